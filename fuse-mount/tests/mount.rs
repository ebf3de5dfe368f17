//! `tierfs mount` for real: basic operations, persistence across remounts
//! and SIGKILL, signals, and the administrative subcommands.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::process::Command;

use common::*;

#[test]
fn basic_operations() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let m = Mount::new(dir.path());
    fs::write(m.path("hello.txt"), b"hello world").unwrap();
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world");
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/b/c/deep"), b"deep").unwrap();
    let names: Vec<String> =
        fs::read_dir(m.path("a/b")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["c"]);
    // Random writes and a sparse file.
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("sparse"))
        .unwrap();
    f.write_all_at(b"end", 1 << 20).unwrap();
    f.write_all_at(b"start", 0).unwrap();
    f.sync_all().unwrap();
    assert_eq!(f.metadata().unwrap().len(), (1 << 20) + 3);
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"start\0\0\0");
    drop(f);
    // Append.
    let mut f = fs::OpenOptions::new().append(true).open(m.path("hello.txt")).unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world!");
    // O_EXCL.
    let err = fs::OpenOptions::new().write(true).create_new(true).open(m.path("hello.txt")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    // chmod, truncate, rename, symlink.
    fs::set_permissions(m.path("hello.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(m.path("hello.txt")).unwrap().mode() & 0o7777, 0o600);
    fs::OpenOptions::new().write(true).open(m.path("hello.txt")).unwrap().set_len(5).unwrap();
    fs::rename(m.path("hello.txt"), m.path("a/hi.txt")).unwrap();
    assert_eq!(fs::read(m.path("a/hi.txt")).unwrap(), b"hello");
    std::os::unix::fs::symlink("hi.txt", m.path("a/link")).unwrap();
    assert_eq!(fs::read_link(m.path("a/link")).unwrap().to_str(), Some("hi.txt"));
    assert_eq!(fs::read(m.path("a/link")).unwrap(), b"hello");
    // Directory rename moves everything below it.
    fs::rename(m.path("a"), m.path("z")).unwrap();
    assert_eq!(fs::read(m.path("z/b/c/deep")).unwrap(), b"deep");
    assert!(!m.path("a").exists());
    // rmdir of a non-empty directory.
    let err = fs::remove_dir(m.path("z/b")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    // Hard links and extended attributes are refused cleanly.
    let err = fs::hard_link(m.path("z/hi.txt"), m.path("z/hard")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSUP), "{err}");
    // statfs.
    let out = run(&m.mnt, "df", &["-P", "."]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("tierfs"));
    fs::remove_dir_all(m.path("z")).unwrap();
    fs::remove_file(m.path("sparse")).unwrap();
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 0);
    assert!(m.unmount().success());
}

#[test]
fn data_and_attributes_survive_a_remount() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    let m = Mount::new(dir.path());
    fs::create_dir(m.path("kept")).unwrap();
    fs::create_dir(m.path("empty")).unwrap();
    fs::write(m.path("kept/file"), b"persistent").unwrap();
    fs::set_permissions(m.path("kept/file"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("kept/file", m.path("link")).unwrap();
    let mtime = fs::metadata(m.path("kept/file")).unwrap().mtime();
    assert!(m.unmount().success());

    let m = Mount::start(dir.path(), &data, MountSpec::default());
    assert_eq!(fs::read(m.path("kept/file")).unwrap(), b"persistent");
    let meta = fs::metadata(m.path("kept/file")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(meta.mtime(), mtime);
    assert!(m.path("empty").is_dir(), "an empty directory survives as its marker");
    assert_eq!(fs::read_link(m.path("link")).unwrap().to_str(), Some("kept/file"));
    assert!(m.unmount().success());
}

#[test]
fn fsynced_data_survives_sigkill() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    let m = Mount::new(dir.path());
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut f = fs::File::create(m.path("durable")).unwrap();
    f.write_all(&payload).unwrap();
    f.sync_all().unwrap();
    let mut small = fs::File::create(m.path("small")).unwrap();
    small.write_all(b"tiny").unwrap();
    small.sync_all().unwrap();
    fs::create_dir(m.path("dir")).unwrap();
    fs::File::open(m.path(".")).unwrap().sync_all().unwrap();
    m.kill();
    drop((f, small));

    let m = Mount::start(dir.path(), &data, MountSpec::default());
    let back = fs::read(m.path("durable")).unwrap();
    assert!(back == payload, "read back {} bytes, wrote {}", back.len(), payload.len());
    assert_eq!(fs::read(m.path("small")).unwrap(), b"tiny");
    assert!(m.path("dir").is_dir());
    assert!(m.unmount().success());
}

#[test]
fn sigterm_unmounts_and_flushes() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut m = Mount::new(dir.path());
    for i in 0..200 {
        fs::write(m.path(&format!("f{i}")), format!("{i}")).unwrap();
    }
    // Large files closed just before the signal: their releases (which
    // commit them) may still be running as tasks when the unmount starts.
    let large = |i: u8| vec![i; (12 << 20) + usize::from(i)];
    for i in 0..3u8 {
        fs::write(m.path(&format!("large{i}")), large(i)).unwrap();
    }
    m.signal(libc::SIGTERM);
    assert!(m.wait_exit().success());
    assert!(!is_mounted(&m.mnt));
    drop(m);
    let m = Mount::start(dir.path(), &data, MountSpec::default());
    for i in 0..200 {
        assert_eq!(fs::read_to_string(m.path(&format!("f{i}"))).unwrap(), format!("{i}"));
    }
    for i in 0..3u8 {
        assert!(
            fs::read(m.path(&format!("large{i}"))).unwrap() == large(i),
            "large{i} differs after the restart"
        );
    }
    let mut m2 = m;
    m2.signal(libc::SIGINT);
    assert!(m2.wait_exit().success());
}

const RULES: &str = r#"
[backends.main]
type = "local"
path = "data"

[audit]
path = "audit.log"

[access]
default = "full"
"#;

#[test]
fn sighup_reloads_and_a_bad_file_changes_nothing() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let config = dir.path().join("tierfs.toml");
    fs::write(&config, RULES).unwrap();
    let spec = MountSpec {
        config: Some(config.clone()),
        args: vec!["--attr-timeout".into(), "0".into()],
        ..MountSpec::default()
    };
    let m = Mount::start(dir.path(), &dir.path().join("data"), spec);
    fs::write(m.path("secret"), b"s").unwrap();
    // A broken file: reported, nothing changes.
    fs::write(&config, "this is not toml [").unwrap();
    m.signal(libc::SIGHUP);
    wait_for_log(&m, "was not reloaded");
    assert_eq!(fs::read(m.path("secret")).unwrap(), b"s");
    // Root loses access to `secret` after a valid reload.
    let denied = RULES.replace(
        "default = \"full\"",
        "default = \"full\"\n[[access.rules]]\nprincipal = \"root\"\nresource = \"secret\"\nlevel = \"none\"\n",
    );
    fs::write(&config, denied).unwrap();
    m.signal(libc::SIGHUP);
    wait_for_log(&m, "configuration reloaded");
    let err = fs::read(m.path("secret")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    assert!(m.unmount().success());
    // The audit log recorded the denial and its chain is intact.
    let log = fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"denied\"") || l.contains("Denied")), "{log}");
    let out = Command::new(TIERFS).args(["audit", "verify", "--config"]).arg(&config).output().unwrap();
    // The config now denies root `secret` but is valid; verify only reads the log.
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("intact"));
    // An edited record breaks the chain.
    let tampered = log.replacen("secret", "secreT", 1);
    fs::write(dir.path().join("audit.log"), tampered).unwrap();
    let out = Command::new(TIERFS).args(["audit", "verify", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN"));
}

fn wait_for_log(m: &Mount, needle: &str) {
    for _ in 0..500 {
        if m.log_text().contains(needle) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("`{needle}` never appeared in the log:\n{}", m.log_text());
}

#[test]
fn metrics_and_explain() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let spec =
        MountSpec { config: None, args: vec!["--metrics-addr".into(), addr.clone()], ..MountSpec::default() };
    let m = Mount::start(dir.path(), &dir.path().join("data"), spec);
    fs::write(m.path("x"), b"1").unwrap();
    fs::read(m.path("x")).unwrap();
    let out = Command::new(TIERFS).args(["metrics", "--addr", &addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tierfs_operations_total{backend=\"local\""), "{text}");
    assert!(text.contains("tierfs_fuse_inodes"), "{text}");
    assert!(m.unmount().success());
    let out = Command::new(TIERFS).args(["metrics", "--addr", &addr]).output().unwrap();
    assert!(!out.status.success(), "no daemon, no metrics");

    let out = Command::new(TIERFS).args(["explain", "alice", "write", "docs/a.txt"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ALLOWED"));
}

#[test]
fn a_file_open_twice_has_one_content() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let m = Mount::new(dir.path());
    let mut a =
        fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(m.path("f")).unwrap();
    let mut b = fs::File::open(m.path("f")).unwrap();
    a.write_all(b"written through a").unwrap();
    let mut seen = String::new();
    b.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "written through a");
    a.seek(SeekFrom::Start(0)).unwrap();
    a.write_all(b"W").unwrap();
    b.seek(SeekFrom::Start(0)).unwrap();
    let mut first = [0u8; 1];
    b.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"W");
    drop((a, b));
    assert!(m.unmount().success());
}

#[test]
fn a_full_store_says_enospc_and_keeps_working() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "16m");
    let m = Mount::start(dir.path(), &dir.path().join("disk/store"), MountSpec::default());
    // `df` on the mount tells the store's space (the 16 MiB disk), not the spool's.
    let total = |path: &std::path::Path| {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid C string and `st` a properly sized out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_blocks as u64 * st.f_frsize as u64
    };
    assert_eq!(total(&m.mnt), total(&dir.path().join("disk")));
    assert_ne!(total(&m.mnt), total(&std::env::temp_dir()));
    fs::write(m.path("small"), b"kept").unwrap();
    // 32 MiB into a 16 MiB store: the error is the one `cp` and editors know.
    let mut f = fs::File::create(m.path("big")).unwrap();
    let block = vec![7u8; 1 << 20];
    let failed = (0..32).map(|_| f.write_all(&block)).find_map(Result::err);
    let e = match failed {
        Some(e) => e,
        None => f.sync_all().unwrap_err(),
    };
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    drop(f);
    // Nothing of the failed file is kept once the kernel has released it
    // (after close returned): it stays as it was created, empty, and
    // everything else still works.
    eventually("the refused file is back to empty", || fs::metadata(m.path("big")).unwrap().len() == 0);
    assert_eq!(fs::read(m.path("big")).unwrap(), b"");
    assert_eq!(fs::read(m.path("small")).unwrap(), b"kept");
    fs::remove_file(m.path("big")).unwrap();
    fs::write(m.path("after"), vec![1u8; 4 << 20]).unwrap();
    assert_eq!(fs::metadata(m.path("after")).unwrap().len(), 4 << 20);
    assert!(m.unmount().success());
    drop(disk);
}

/// Writes `data` to a new file `path` as `cp` does (create, write, close),
/// with `fsync` before the close if `sync`, returning the first error,
/// close's included.
fn write_file(path: &std::path::Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    close(f)
}

/// The content of the `i`th small file.
fn small_file(i: usize) -> Vec<u8> {
    let mut data = vec![(i % 251) as u8; 100_000];
    data[..8].copy_from_slice(&(i as u64).to_le_bytes());
    data
}

/// Copies 100 KB files into a store on an 8 MiB device until it is full,
/// as `cp` would (with `fsync`, as editors and databases do, if `sync`),
/// until five in a row fail. Returns the files acknowledged (every call,
/// `close` included, returned success); every failure must be `ENOSPC`.
fn fill_with_small_files(m: &Mount, from: usize, sync: bool) -> Vec<usize> {
    let mut acknowledged = Vec::new();
    let mut failed_in_a_row = 0;
    let mut outcomes = String::new();
    for i in from..from + 400 {
        let result = write_file(&m.path(&format!("f{i:04}")), &small_file(i), sync);
        outcomes.push(if result.is_ok() { '+' } else { '-' });
        match result {
            Ok(()) => {
                acknowledged.push(i);
                failed_in_a_row = 0;
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "f{i:04}: a full store must say ENOSPC");
                failed_in_a_row += 1;
                if failed_in_a_row == 5 {
                    return acknowledged;
                }
            }
        }
    }
    // What to look at when it happens: is the mount (and the small device
    // under the store) still there, and what did the daemon say?
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let near: Vec<&str> =
        mounts.lines().filter(|l| l.contains(m.mnt.parent().unwrap().to_str().unwrap())).collect();
    let log = m.log_text();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    panic!(
        "40 MB of files went into an 8 MiB store without five failures in a row (+ saved, - refused): {outcomes}\n\
         mounted: {}; mounts under the test's directory: {near:#?}\nlast lines of the daemon's log (newest first): {tail:#?}",
        is_mounted(&m.mnt)
    );
}

#[test]
fn a_store_full_of_small_files_keeps_serving_and_recovers() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "8m");
    let store = dir.path().join("disk/store");
    let m = Mount::start(dir.path(), &store, MountSpec::default());
    // Written with fsync: what fsync acknowledged is in the store.
    let acknowledged = fill_with_small_files(&m, 0, true);
    assert!(acknowledged.len() > 20, "only {} files fitted", acknowledged.len());
    // Everything acknowledged is there and whole; listings and stats work.
    let names: Vec<String> =
        fs::read_dir(&m.mnt).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    for &i in &acknowledged {
        let name = format!("f{i:04}");
        assert!(names.contains(&name), "{name} is missing from the listing while the store is full");
        assert!(fs::read(m.path(&name)).unwrap() == small_file(i), "{name} changed while the store is full");
    }
    // Deleting frees space: writing works again without a restart, and a
    // sync says every acknowledged change is now saved.
    let (gone, kept) = acknowledged.split_at(acknowledged.len() * 3 / 4);
    for &i in gone {
        fs::remove_file(m.path(&format!("f{i:04}"))).unwrap();
    }
    write_file(&m.path("after"), &small_file(9999), false).unwrap();
    fs::File::open(&m.mnt).unwrap().sync_all().unwrap();
    let log_path = m.log.clone();
    assert!(m.unmount().success());
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("not committed"), "a change was given up although space was freed:\n{log}");

    // Remounted: every acknowledged file that was not deleted is whole.
    let m = Mount::start(dir.path(), &store, MountSpec::default());
    for &i in kept {
        assert!(
            fs::read(m.path(&format!("f{i:04}"))).unwrap() == small_file(i),
            "f{i:04} changed after a remount"
        );
    }
    for &i in gone {
        assert!(!m.path(&format!("f{i:04}")).exists(), "deleted f{i:04} came back");
    }
    assert!(fs::read(m.path("after")).unwrap() == small_file(9999), "`after` changed");

    // Written as `cp` does, without fsync, many more files are taken than
    // fit (each `close` hands the file to the journal). Unmounting while
    // full ends within its grace period and names each change it could not
    // commit; nothing else is lost.
    let acknowledged = fill_with_small_files(&m, 2000, false);
    let started = std::time::Instant::now();
    assert!(m.unmount().success());
    let waited = started.elapsed();
    let log = fs::read_to_string(&log_path).unwrap();
    let m = Mount::start(dir.path(), &store, MountSpec::default());
    for &i in &acknowledged {
        let name = format!("f{i:04}");
        let data = fs::read(m.path(&name)).ok();
        if data.as_deref() == Some(&small_file(i)[..]) {
            continue;
        }
        // Not saved: the log names it, and the file is missing or as it
        // was created (empty), never partly written.
        let size = data.as_ref().map(Vec::len);
        assert!(matches!(size, None | Some(0)), "{name} is torn: {size:?} bytes");
        assert!(
            log.lines().any(|l| l.contains("not committed") && l.contains(&name)),
            "{name} was acknowledged, then lost at unmount without a word (unmount took {waited:?}):\n{log}"
        );
    }
    for &i in kept {
        assert!(fs::read(m.path(&format!("f{i:04}"))).unwrap() == small_file(i), "f{i:04} changed");
    }
    assert!(m.unmount().success());
    drop(disk);
}

#[test]
fn a_missing_mount_point_is_created_and_a_file_is_refused() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let mnt = dir.path().join("new/tierfs");
    let spec = MountSpec { mountpoint: Some(mnt.clone()), ..MountSpec::default() };
    let m = Mount::start(dir.path(), &dir.path().join("data"), spec);
    fs::write(m.path("f"), b"x").unwrap();
    assert_eq!(fs::read(mnt.join("f")).unwrap(), b"x");
    assert!(m.unmount().success());

    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let out = Command::new(TIERFS)
        .args(["mount", "--root"])
        .arg(dir.path().join("data"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

#[test]
fn times_before_1970_keep_their_fraction() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let m = Mount::new(dir.path());
    sh(&m.mnt, "touch -d '1960-01-01 00:00:00.25 UTC' old && touch -d '1969-12-31 23:59:59.5 UTC' edge");
    let shown = sh(&m.mnt, "TZ=UTC stat -c '%y' old edge");
    assert_eq!(shown, "1960-01-01 00:00:00.250000000 +0000\n1969-12-31 23:59:59.500000000 +0000\n");
    assert!(m.unmount().success());
}

/// A full spool directory (where a file cut below its stored length is
/// copied while open): the change that does not fit fails with ENOSPC, the
/// file keeps its last saved content, other files read and write on (a
/// small change to a large file needs no spool room: only the changed
/// bytes are kept), and once the spool has room again the same change
/// succeeds, without a remount.
#[test]
fn a_full_spool_says_enospc_and_loses_nothing() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let disk = SmallDisk::mount(&dir.path().join("spool"), "8m");
    let spool = dir.path().join("spool");
    let args = vec!["--spool-dir".to_owned(), spool.to_str().unwrap().to_owned()];
    let m = Mount::start(dir.path(), &dir.path().join("data"), MountSpec { args, ..MountSpec::default() });
    // Two 7 MiB files, written sequentially (straight to the store).
    let content = |i: u8| vec![i; 7 << 20];
    for i in 1..=2u8 {
        write_file(&m.path(&format!("f{i}")), &content(i), true).unwrap();
    }
    let cut = 6 << 20;
    // Cut f1: what stays is copied into the spool (6 MiB of its 8).
    let mut f1 = fs::OpenOptions::new().read(true).write(true).open(m.path("f1")).unwrap();
    f1.set_len(cut).unwrap();
    f1.write_all(b"one").unwrap();
    // Cutting f2 as well does not fit.
    let f2 = fs::OpenOptions::new().read(true).write(true).open(m.path("f2")).unwrap();
    let e = f2.set_len(cut).and_then(|()| f2.sync_all()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    drop(f2);
    // Nothing is lost or half-written; the other files work on, and a
    // small change to f2 in place needs no spool room.
    assert!(fs::read(m.path("f2")).unwrap() == content(2), "f2 changed after a refused change");
    fs::write(m.path("small"), b"still works").unwrap();
    assert_eq!(fs::read(m.path("small")).unwrap(), b"still works");
    let mut f2 = fs::OpenOptions::new().read(true).write(true).open(m.path("f2")).unwrap();
    f2.write_all(b"in place").unwrap();
    f2.sync_all().unwrap();
    close(f2).unwrap();
    let mut expected2 = content(2);
    expected2[..8].copy_from_slice(b"in place");
    assert!(fs::read(m.path("f2")).unwrap() == expected2, "f2's small change was not saved");
    // f1's change is saved; its spool copy is freed at close.
    f1.sync_all().unwrap();
    close(f1).unwrap();
    let mut expected = content(1);
    expected.truncate(cut as usize);
    expected[..3].copy_from_slice(b"one");
    assert!(fs::read(m.path("f1")).unwrap() == expected, "f1's change was not saved");
    // The spool has room again once the kernel has released f1 (after
    // close returned): the same cut of f2 now works.
    wait_for_free_space(&spool, 6 << 20);
    let f2 = fs::OpenOptions::new().read(true).write(true).open(m.path("f2")).unwrap();
    f2.set_len(cut).unwrap();
    f2.sync_all().unwrap();
    close(f2).unwrap();
    expected2.truncate(cut as usize);
    assert!(fs::read(m.path("f2")).unwrap() == expected2, "f2's cut was not saved");
    assert!(m.unmount().success());
    drop(disk);
}

/// Every blob file of the store: name, inode and modification time.
fn blobs(data: &std::path::Path) -> Vec<(String, u64, i64)> {
    let mut found = Vec::new();
    for entry in walk(data) {
        if entry.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "blobs") {
            let meta = fs::metadata(&entry).unwrap();
            found.push((
                entry.display().to_string(),
                meta.ino(),
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
            ));
        }
    }
    found.sort();
    found
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// chmod, chown and utimes of a closed file change its attributes and
/// leave its content where it is: the blob that holds the bytes is the
/// same file, untouched, before and after, and across a remount.
#[test]
fn attribute_changes_of_a_closed_file_rewrite_nothing() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    let m = Mount::new(dir.path());
    let content: Vec<u8> = (0..(32u32 << 20)).map(|i| (i % 251) as u8).collect();
    fs::write(m.path("big.bin"), &content).unwrap();
    eventually("the file is committed", || blobs(&data).len() == 1);
    let before = blobs(&data);

    fs::set_permissions(m.path("big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(m.path("big.bin"), Some(1234), Some(4321)).unwrap();
    sh(&m.mnt, "touch -m -d '2001-02-03 04:05:06 UTC' big.bin");
    let meta = fs::metadata(m.path("big.bin")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o600, 1234, 4321));
    assert_eq!(meta.mtime(), 981_173_106);
    assert_eq!(blobs(&data), before, "an attribute change rewrote the content");
    assert!(m.unmount().success());

    let m = Mount::start(dir.path(), &data, MountSpec::default());
    let meta = fs::metadata(m.path("big.bin")).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime()),
        (0o600, 1234, 4321, 981_173_106)
    );
    assert!(fs::read(m.path("big.bin")).unwrap() == content, "the content changed");
    assert_eq!(blobs(&data), before);
    assert!(m.unmount().success());
}
