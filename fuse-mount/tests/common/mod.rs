//! Real mounts for the integration tests: spawn the built `tierfs` binary,
//! wait until the kernel shows the mount, and always unmount (a `Drop`
//! guard, also on panic), so no test leaves a mount or a daemon behind.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `tierfs` binary under test.
pub const TIERFS: &str = env!("CARGO_BIN_EXE_tierfs");

/// Whether real mounts are possible here (root and /dev/fuse); tests that
/// need them return early, saying so, when not. Under `CI=true` they are
/// required: the test fails instead of skipping.
pub fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = root && Path::new("/dev/fuse").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "real FUSE mounts need root and /dev/fuse, and CI=true requires them"
        );
        eprintln!("skipped: real FUSE mounts need root and /dev/fuse");
    }
    ok
}

/// `bases` made this process's own (`{base}-{pid}`): users and groups
/// named so are not removed by another run of the suite on the machine.
pub fn unique_names(bases: &[&str]) -> Vec<String> {
    bases.iter().map(|b| format!("{b}-{}", std::process::id())).collect()
}

/// Unix users (and groups) made for one test and removed after it: each
/// `(user, groups)` gets a user in those groups; the groups are created.
pub struct Users {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Users {
    /// Creates `users`, each in its groups (created first).
    pub fn create(users: &[(&str, &[&str])]) -> Users {
        let mut groups: Vec<String> =
            users.iter().flat_map(|(_, g)| g.iter().map(|g| (*g).to_owned())).collect();
        groups.sort();
        groups.dedup();
        let made = Users { users: users.iter().map(|(u, _)| (*u).to_owned()).collect(), groups };
        made.remove();
        let ok = |c: &mut Command| assert!(c.status().expect("run user tools").success(), "{c:?} failed");
        for group in &made.groups {
            ok(Command::new("groupadd").arg(group));
        }
        for (user, groups) in users {
            let mut cmd = Command::new("useradd");
            cmd.args(["--no-create-home", "--shell", "/bin/sh"]);
            if !groups.is_empty() {
                cmd.args(["-G", &groups.join(",")]);
            }
            ok(cmd.arg(user));
        }
        made
    }

    fn remove(&self) {
        for user in &self.users {
            let _ = Command::new("userdel").arg(user).output();
        }
        for group in &self.groups {
            let _ = Command::new("groupdel").arg(group).output();
        }
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `script` with `sh -c` as `user` in `dir`; returns (success, stdout + stderr).
pub fn as_user(user: &str, dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run runuser");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs `script` as `user`, which must succeed; returns its output.
pub fn allowed(user: &str, dir: &Path, script: &str) -> String {
    let (ok, text) = as_user(user, dir, script);
    assert!(ok, "{user} should be allowed `{script}`:\n{text}");
    text
}

/// Runs `script` as `user`, which must fail with "Permission denied".
pub fn denied(user: &str, dir: &Path, script: &str) {
    let (ok, text) = as_user(user, dir, script);
    assert!(!ok, "{user} should be denied `{script}`:\n{text}");
    assert!(text.contains("Permission denied"), "{user} `{script}` failed otherwise:\n{text}");
}

/// A running `tierfs mount` with its directories.
pub struct Mount {
    /// The mount point.
    pub mnt: PathBuf,
    /// The store's data directory (`--root`), or the configuration's.
    pub data: PathBuf,
    /// The daemon's log (stderr).
    pub log: PathBuf,
    child: Option<Child>,
    mounted: bool,
}

/// Options for [`Mount::start`].
#[derive(Default, Clone)]
pub struct MountSpec {
    /// `--config FILE` instead of `--root`.
    pub config: Option<PathBuf>,
    /// More arguments.
    pub args: Vec<String>,
    /// The mount point, as given (not created here); default `base/mnt`, created.
    pub mountpoint: Option<PathBuf>,
}

impl Mount {
    /// Mounts a fresh store in `base/data` at `base/mnt`.
    pub fn new(base: &Path) -> Mount {
        Mount::start(base, &base.join("data"), MountSpec::default())
    }

    /// Mounts the store in `data` at `base/mnt`.
    pub fn start(base: &Path, data: &Path, spec: MountSpec) -> Mount {
        let mnt = match &spec.mountpoint {
            Some(mnt) => mnt.clone(),
            None => {
                let mnt = base.join("mnt");
                std::fs::create_dir_all(&mnt).expect("create the mount point");
                mnt
            }
        };
        let log = base.join(format!("tierfs-{}.log", std::process::id()));
        let mut cmd = Command::new(TIERFS);
        cmd.arg("mount");
        match &spec.config {
            Some(config) => {
                cmd.arg("--config").arg(config);
            }
            None => {
                cmd.arg("--root").arg(data);
            }
        }
        cmd.args(&spec.args).arg(&mnt);
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open the log");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,fuser=error");
        }
        let child = cmd.spawn().expect("spawn tierfs");
        let mut mount = Mount { mnt, data: data.to_owned(), log, child: Some(child), mounted: false };
        mount.wait_mounted();
        mount
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if is_mounted(&self.mnt) {
                self.mounted = true;
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("tierfs exited ({status}) before mounting:\n{}", self.log_text());
                }
            }
            assert!(Instant::now() < deadline, "no mount after 30 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `mnt/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Unmounts with `tierfs unmount` and waits for the daemon to exit.
    pub fn unmount(mut self) -> ExitStatus {
        let out = Command::new(TIERFS).arg("unmount").arg(&self.mnt).output().expect("run tierfs unmount");
        assert!(out.status.success(), "tierfs unmount failed: {}", String::from_utf8_lossy(&out.stderr));
        self.mounted = false;
        self.wait_exit()
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits for the daemon to exit on its own (after a signal).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon runs");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait for tierfs") {
                self.mounted = is_mounted(&self.mnt);
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tierfs did not exit within 60 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the daemon and removes the dead mount.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        let _ = child.kill();
        let _ = child.wait();
        detach(&self.mnt);
        self.mounted = false;
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted || is_mounted(&self.mnt) {
            let _ = Command::new(TIERFS).arg("unmount").arg(&self.mnt).output();
            if is_mounted(&self.mnt) {
                detach(&self.mnt);
            }
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `path` is a mount point in /proc/mounts.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return false };
    let want = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    mounts.lines().any(|line| {
        let mut fields = line.split(' ');
        let (_, target) = (fields.next(), fields.next());
        target.is_some_and(|t| Path::new(&t.replace("\\040", " ")) == want || Path::new(t) == path)
    })
}

/// Lazily unmounts `path`.
pub fn detach(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: `c` is a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Runs `program args` in `dir`, panicking with its output if it fails.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a shell command in `dir`, panicking with its output if it fails.
pub fn sh(dir: &Path, script: &str) -> String {
    let out = run(dir, "sh", &["-c", script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `program` is installed, for a test that cannot run without it;
/// under `CI=true` (which installs it) its absence fails the test instead.
pub fn need(program: &str) -> bool {
    let found = have(program);
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{program}` is missing, and CI=true requires it"
        );
        eprintln!("skipped: `{program}` is not installed");
    }
    found
}

/// Whether `program` is installed.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Resident memory high-water mark of `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Closes `f`, returning close's own result (std ignores it): the daemon
/// reports at close what it knows did not reach the store.
pub fn close(f: std::fs::File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: the descriptor is ours (taken from `f`) and closed once.
    match unsafe { libc::close(f.into_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// A temporary directory for one test, removed afterwards.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tierfs-test-").tempdir().expect("create a temporary directory")
}

/// A tmpfs of a given size mounted on `dir`, unmounted on drop: a device
/// that fills up for real (needs root, as every mount test does).
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `dir`.
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("create the tmpfs mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        SmallDisk { path: dir.to_owned() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Fails at once, saying what to free, when `dir`'s file system has less
/// than `bytes` available: a test that fills the disk half-way through
/// would fail later with a bare `EIO`/`ENOSPC` that hides the cause.
pub fn need_free_space(dir: &Path, bytes: u64) {
    let free = free_space(dir);
    assert!(
        free >= bytes,
        "this test needs {} GiB free under {} and there are {:.1} GiB: free some space (or set TMPDIR)",
        bytes >> 30,
        dir.display(),
        free as f64 / (1u64 << 30) as f64
    );
}

/// Waits until `done` holds, for what the mount does when the kernel
/// releases a closed file (after `close(2)` has returned). Fails after a
/// minute, naming `what`.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "still not so after a minute: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Bytes available to unprivileged users on `dir`'s file system.
pub fn free_space(dir: &Path) -> u64 {
    let c = CString::new(dir.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: `c` is a valid C string and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}: {}", dir.display(), std::io::Error::last_os_error());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Waits until `dir`'s file system has `bytes` available: space the mount
/// frees when the kernel releases a closed file, which it does after
/// `close(2)` has returned. Fails after a minute, saying how much is free.
pub fn wait_for_free_space(dir: &Path, bytes: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while free_space(dir) < bytes {
        assert!(
            std::time::Instant::now() < deadline,
            "{} still has only {} bytes free, {bytes} expected once closed files are released",
            dir.display(),
            free_space(dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A store a mount test runs on: tests written once take one and run on
/// each ([`on_every_store!`](crate::on_every_store)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: the local backend in `base/data`.
    Local,
    /// The memory backend: gone at unmount.
    Memory,
    /// The Garage cluster of the services stage (an `s3` backend under a
    /// prefix of its own).
    #[cfg(feature = "services")]
    Cluster,
}

impl Backend {
    /// Mounts a fresh store of this kind at `base/mnt`.
    pub fn mount(self, base: &Path) -> Mount {
        let config = match self {
            Backend::Local => return self.remount(base),
            Backend::Memory => "[backends.m]\ntype = \"memory\"\n".to_owned(),
            #[cfg(feature = "services")]
            Backend::Cluster => format!(
                "{}[policy]\ntype = \"always_local\"\nbackend = \"cluster\"\n",
                tierfs_tests::services::s3_backend_toml("cluster", "")
            ),
        };
        let path = base.join("tierfs.toml");
        std::fs::write(&path, config).expect("write the configuration");
        self.remount(base)
    }

    /// Mounts the same store again after an unmount (a memory store is
    /// empty again).
    pub fn remount(self, base: &Path) -> Mount {
        let spool = base.join("spool");
        std::fs::create_dir_all(&spool).expect("create the spool directory");
        let args = vec!["--spool-dir".to_owned(), spool.to_str().expect("UTF-8 path").to_owned()];
        match self {
            Backend::Local => {
                Mount::start(base, &base.join("data"), MountSpec { args, ..Default::default() })
            }
            _ => Mount::start(
                base,
                &base.join("data"),
                MountSpec { config: Some(base.join("tierfs.toml")), args, ..Default::default() },
            ),
        }
    }

    /// Whether a remount finds what was written before.
    pub fn persists(self) -> bool {
        self != Backend::Memory
    }
}

/// One `#[test]` per store for each test function `fn name(backend:
/// Backend)`: `name::local`, `name::memory`, and with the `services`
/// feature `name::cluster`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn local() {
                    super::$name($crate::common::Backend::Local);
                }

                #[test]
                fn memory() {
                    super::$name($crate::common::Backend::Memory);
                }

                #[cfg(feature = "services")]
                #[test]
                fn cluster() {
                    super::$name($crate::common::Backend::Cluster);
                }
            }
        )*
    };
}
