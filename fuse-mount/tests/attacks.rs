//! Hostile local users against a multi-user mount (`--allow-other`,
//! `[access]`, `[audit]`): each attempt to get around the access rules or
//! the audit log fails, and leaves a record.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The rules every test here mounts with; `{a}`, `{b}`, `{c}` are users,
/// `{out}` a group denied `public/`.
const RULES: &str = r#"
[backends.main]
type = "local"
path = "data"

[audit]
path = "audit/audit.log"

[access]
default = "none"

[[access.rules]]
principal = "root"
resource = "*"
level = "full"

[[access.rules]]
principal = "*"
resource = "*"
operation = "list"
level = "read"

[[access.rules]]
principal = "*"
resource = "public/"
level = "read"

[[access.rules]]
principal = "root"
resource = "public/"
level = "full"

[[access.rules]]
principal = "role:group:{out}"
resource = "public/"
level = "none"

[[access.rules]]
principal = "{a}"
resource = "shared/"
level = "full"

[[access.rules]]
principal = "{c}"
resource = "ops/log.txt"
operation = "write"
level = "full"
"#;

struct Setup {
    _users: Users,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    names: [String; 4],
}

impl Setup {
    /// Users `{p}-a`, `{p}-b` (in group `{p}-out`) and `{p}-c` (each name
    /// with this process's id), and the configuration.
    fn new(p: &str) -> Setup {
        let names: [String; 4] =
            unique_names(&[&format!("{p}-a"), &format!("{p}-b"), &format!("{p}-c"), &format!("{p}-out")])
                .try_into()
                .unwrap();
        let users = Users::create(&[(&names[0], &[]), (&names[1], &[names[3].as_str()]), (&names[2], &[])]);
        let dir = tempdir();
        // Other users must reach the mount point (the store stays private).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("tierfs.toml");
        fs::write(&config, Setup::rules(&names, RULES)).unwrap();
        Setup { _users: users, dir, config, names }
    }

    fn rules(names: &[String; 4], text: &str) -> String {
        text.replace("{a}", &names[0])
            .replace("{b}", &names[1])
            .replace("{c}", &names[2])
            .replace("{out}", &names[3])
    }

    fn mount(&self) -> Mount {
        let spec = MountSpec {
            config: Some(self.config.clone()),
            args: vec![
                "--allow-other".into(),
                "--spool-dir".into(),
                self.path("spool").display().to_string(),
            ],
            ..MountSpec::default()
        };
        Mount::start(self.dir.path(), &self.path("data"), spec)
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn audit(&self) -> String {
        fs::read_to_string(self.path("audit/audit.log")).unwrap()
    }

    /// Audit lines of `who` on `key` with `result`.
    fn records(&self, who: &str, key: &str, result: &str) -> Vec<String> {
        self.audit()
            .lines()
            .filter(|l| l.contains(&format!("\"principal\":\"{who}\"")))
            .filter(|l| l.contains(&format!("\"{key}\"")))
            .filter(|l| l.contains(&format!("\"result\":\"{result}\"")))
            .map(str::to_owned)
            .collect()
    }

    fn verify(&self) -> (bool, String) {
        let out =
            Command::new(TIERFS).args(["audit", "verify", "--config"]).arg(&self.config).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn the_store_and_the_audit_log_are_private_to_the_daemon() {
    if !can_mount() || !need("runuser") {
        return;
    }
    let s = Setup::new("tfa1");
    let alice = &s.names[0];
    let m = s.mount();
    sh(&m.mnt, "mkdir secret && echo TOPSECRETVALUE > secret/small && head -c 400000 /dev/zero | tr '\\0' 'S' > secret/large");
    // Through the mount: denied.
    denied(alice, &m.mnt, "cat secret/small");
    // Around the daemon, on disk: every file and directory is the daemon's alone.
    sh(s.dir.path(), "sync");
    for (rel, want) in [
        ("data", 0o700),
        ("data/tierfs.redb", 0o600),
        ("data/blobs", 0o700),
        ("audit", 0o700),
        ("audit/audit.log", 0o600),
        ("audit/audit.log.key", 0o600),
        ("audit/audit.log.seal", 0o600),
        ("spool", 0o700),
    ] {
        assert_eq!(mode(&s.path(rel)), want, "{rel} has mode {:o}", mode(&s.path(rel)));
    }
    for blob in fs::read_dir(s.path("data/blobs")).unwrap() {
        assert_eq!(mode(&blob.unwrap().path()), 0o600, "a blob file");
    }
    let base = s.dir.path();
    denied(alice, base, "grep -a TOPSECRETVALUE data/tierfs.redb");
    denied(alice, base, "cat audit/audit.log");
    denied(alice, base, "ls data/blobs");
    assert!(m.unmount().success());

    // A store or log others can read is refused at start, naming the chmod.
    fs::set_permissions(s.path("data"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(TIERFS)
        .args(["mount", "--allow-other", "--config"])
        .arg(&s.config)
        .arg(s.path("mnt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounted a store other users can read");
    assert!(text.contains(&format!("chmod 700 {}", s.path("data").display())), "{text}");
    fs::set_permissions(s.path("data"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(s.path("audit/audit.log"), fs::Permissions::from_mode(0o644)).unwrap();
    let out =
        Command::new(TIERFS).args(["mount", "--config"]).arg(&s.config).arg(s.path("mnt")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounted with an audit log other users can read");
    assert!(text.contains("chmod 600"), "{text}");
}

/// A program run as `user` in `dir` (with `sh -c`) that prints `ready`,
/// then waits for a line on stdin before it goes on.
struct Held {
    child: std::process::Child,
    out: std::process::ChildStdout,
}

impl Held {
    /// Runs `script`, then says ready and waits, then runs `then`.
    fn start(user: &str, dir: &Path, script: &str, then: &str) -> Held {
        Held::spawn(user, dir, &format!("{script} && echo ready && read line; {then}"))
    }

    /// Runs `program`, which prints `ready` and reads a line itself.
    fn spawn(user: &str, dir: &Path, program: &str) -> Held {
        let mut child = Command::new("runuser")
            .args(["-u", user, "--", "sh", "-c", program])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&seen).contains("ready") {
            assert!(
                Instant::now() < deadline,
                "the held program did not start: {}",
                String::from_utf8_lossy(&seen)
            );
            let mut buf = [0u8; 64];
            let n = std::io::Read::read(&mut out, &mut buf).unwrap();
            assert!(n > 0, "the held program ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        Held { child, out }
    }

    /// Lets the program go on and waits for it; returns the rest of its
    /// output (stdout, then stderr).
    fn finish(mut self) -> String {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        let done = self.child.wait_with_output().unwrap();
        rest + &String::from_utf8_lossy(&done.stderr)
    }
}

/// Sends SIGHUP and waits until the daemon reports the reload.
fn reload(m: &Mount) {
    let before = m.log_text().matches("configuration reloaded").count();
    m.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.log_text().matches("configuration reloaded").count() == before {
        assert!(Instant::now() < deadline, "no reload:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_narrowed_rule_applies_to_open_files_and_each_writer_is_its_own() {
    if !can_mount() || !need("runuser") {
        return;
    }
    let s = Setup::new("tfa2");
    let alice = s.names[0].clone();
    let m = s.mount();
    sh(&m.mnt, "mkdir -m 777 shared && echo original > shared/x && echo line1 > shared/y && chmod 666 shared/x shared/y");
    // alice opens both files read-write while allowed, writes without fsync, keeps them open.
    let held = Held::start(
        &alice,
        &m.mnt,
        "exec 3<>shared/x 4>>shared/y && printf HERS >&3 && echo hers >&4",
        "exec 3>&- 4>&-",
    );
    // Her rule is narrowed to read, and the daemon reloads.
    let narrowed = fs::read_to_string(&s.config).unwrap().replace(
        &format!("principal = \"{alice}\"\nresource = \"shared/\"\nlevel = \"full\""),
        &format!("principal = \"{alice}\"\nresource = \"shared/\"\nlevel = \"read\""),
    );
    fs::write(&s.config, narrowed).unwrap();
    reload(&m);
    // root reads the store's bytes, never hers; root's own changes stand.
    assert_eq!(sh(&m.mnt, "cat shared/x"), "original\n");
    sh(&m.mnt, "touch shared/x && echo X >> shared/y");
    assert_eq!(sh(&m.mnt, "cat shared/y"), "line1\nX\n");
    // Her further writes are refused at once.
    denied(&alice, &m.mnt, "echo again >> shared/x");
    held.finish();
    assert!(m.unmount().success());

    let m = s.mount();
    assert_eq!(sh(&m.mnt, "cat shared/x"), "original\n");
    assert_eq!(sh(&m.mnt, "cat shared/y"), "line1\nX\n");
    assert!(m.unmount().success());
    // The log holds her refusals as hers, no write of hers allowed after the
    // narrowing, and root's changes as root's; the chain is intact.
    let audit = s.audit();
    let narrowed_at =
        audit.lines().position(|l| l.contains("\"denied\"") && l.contains(&alice)).expect("her refusal");
    for line in audit.lines().skip(narrowed_at) {
        let hers = line.contains(&format!("\"principal\":\"{alice}\""));
        let write = line.contains("\"operation\":\"write\"") || line.contains("\"operation\":\"batch\"");
        assert!(
            !(hers && write && line.contains("\"allowed\"")),
            "a write of hers allowed after the narrowing: {line}"
        );
    }
    assert!(!s.records("root", "shared/y", "allowed").is_empty());
    let (ok, text) = s.verify();
    assert!(ok, "{text}");
}

#[test]
fn listings_show_no_name_the_caller_may_not_read() {
    if !can_mount() || !need("runuser") {
        return;
    }
    let s = Setup::new("tfa3");
    let [alice, bob, carol, _] = s.names.clone();
    let m = s.mount();
    sh(&m.mnt, "mkdir -m 777 public shared ops && echo hello > public/a && echo log > ops/log.txt");
    // bob's group is denied public/; carol may only write ops/log.txt.
    assert_eq!(allowed(&alice, &m.mnt, "ls"), "public\nshared\n");
    assert_eq!(allowed(&bob, &m.mnt, "ls"), "");
    assert_eq!(allowed(&carol, &m.mnt, "ls"), "public\n");
    // Directories root creates are never shown to alice, even while their
    // first file waits to be committed.
    let root = std::thread::spawn({
        let mnt = m.mnt.clone();
        move || sh(&mnt, "for i in $(seq 200); do mkdir -p secret$i/d && echo x > secret$i/d/f; done")
    });
    let seen = allowed(&alice, &m.mnt, "for i in $(seq 200); do ls; done | grep -c secret || true");
    root.join().unwrap();
    assert_eq!(seen.trim(), "0", "alice saw root's directories");
    assert_eq!(allowed(&alice, &m.mnt, "ls | grep -c secret || true").trim(), "0");
    assert!(m.unmount().success());
}

#[test]
fn touching_the_root_needs_a_rule_and_is_audited() {
    if !can_mount() || !need("runuser") {
        return;
    }
    let s = Setup::new("tfa4");
    let alice = s.names[0].clone();
    let m = s.mount();
    sh(&m.mnt, "chmod 777 .");
    denied(&alice, &m.mnt, "touch .");
    sh(&m.mnt, "touch .");
    assert!(m.unmount().success());
    let refused = s.records(&alice, "", "denied");
    assert!(!refused.is_empty(), "alice's touch of the root left no record:\n{}", s.audit());
    assert!(!s.records("root", "", "allowed").is_empty());
}

#[test]
fn audit_verify_names_each_tampering() {
    if !can_mount() {
        return;
    }
    let s = Setup::new("tfa5");
    let m = s.mount();
    sh(&m.mnt, "mkdir d && for i in 1 2 3 4 5 6 7 8; do echo $i > d/$i; done && cat d/3");
    assert!(m.unmount().success());
    let (ok, text) = s.verify();
    assert!(ok, "{text}");
    let log = s.path("audit/audit.log");
    let pristine = fs::read_to_string(&log).unwrap();
    for (how, script, kind) in [
        ("drop the last records", "head -n -5 audit/audit.log > t && cat t > audit/audit.log", "truncated"),
        ("delete the first line", "sed -i 1d audit/audit.log", "beginning removed"),
        ("add a field", "sed -i '3s/^{/{\"x\":1,/' audit/audit.log", "edited"),
        ("change whitespace only", "sed -i '3s/,\"time\"/, \"time\"/' audit/audit.log", "edited"),
    ] {
        fs::write(&log, &pristine).unwrap();
        sh(s.dir.path(), script);
        let (ok, text) = s.verify();
        assert!(!ok, "{how}: verify says intact:\n{text}");
        assert!(text.contains(kind) && text.contains("audit.log:"), "{how}: {text}");
    }
}

#[test]
fn a_reader_narrowed_by_a_reload_reads_no_more_through_an_open_descriptor() {
    if !can_mount() || !need("runuser") || !need("python3") {
        return;
    }
    let s = Setup::new("tfa6");
    let alice = s.names[0].clone();
    let m = s.mount();
    sh(&m.mnt, "mkdir -m 777 shared && echo first > shared/x && chmod 644 shared/x");
    // alice reads the file (the kernel caches its pages), keeps it open,
    // and after the reload reads it again from the start.
    let script = "python3 -c \"import os,sys\nfd=os.open('shared/x',os.O_RDONLY)\nos.read(fd,100)\nprint('ready',flush=True)\nsys.stdin.readline()\nos.lseek(fd,0,0)\ntry:\n  os.read(fd,100); print('READ')\nexcept PermissionError: print('DENIED')\n\"";
    let held = Held::spawn(&alice, &m.mnt, script);
    let narrowed = fs::read_to_string(&s.config).unwrap().replace(
        &format!("principal = \"{alice}\"\nresource = \"shared/\"\nlevel = \"full\""),
        &format!("principal = \"{alice}\"\nresource = \"shared/\"\nlevel = \"none\""),
    );
    fs::write(&s.config, narrowed).unwrap();
    reload(&m);
    let rest = held.finish();
    assert!(rest.contains("DENIED"), "{rest}");
    assert!(m.unmount().success());
    assert!(!s.records(&alice, "shared/x", "denied").is_empty());
}
