//! Storage classes through a mount of two disks and a class of its own:
//! `setfattr -n user.tierfs.class` on a directory (served without
//! `--xattrs`, the store having several backends), `cp -a` into it puts
//! every file on the class's disk, a file's own class moves it back, the
//! classes survive a remount, and a class nobody can provide or an
//! unknown one is refused with the errno `setfattr` reports.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tierfs_core::{Key, LocalStorage, Storage};

fn write_config(base: &Path) -> PathBuf {
    let text = format!(
        "[backends.disk]\ntype = \"local\"\npath = {:?}\n\
         [backends.nvme]\ntype = \"local\"\npath = {:?}\n\
         [policy]\ntype = \"always_local\"\nbackend = \"disk\"\n\
         [classes.fast]\nbackend = \"nvme\"\n",
        base.join("disk"),
        base.join("nvme")
    );
    let path = base.join("classes.toml");
    fs::write(&path, text).unwrap();
    path
}

fn getfattr(path: &Path) -> Option<String> {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", "user.tierfs.class"])
        .arg(path)
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
}

/// `setfattr`'s exit status and error text.
fn setfattr(path: &Path, value: &str) -> (bool, String) {
    let out =
        Command::new("setfattr").args(["-n", "user.tierfs.class", "-v", value]).arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What the daemon logs when a move to a storage class has ended.
const MOVED: &str = "moved to its storage class";

/// Waits until the daemon has logged `n` ended moves.
fn wait_moved(m: &Mount, n: usize) {
    let start = Instant::now();
    while m.log_text().matches(MOVED).count() < n {
        assert!(start.elapsed() < Duration::from_secs(60), "the move did not end:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The keys `backend` (a local store in `base/NAME`) holds, read after the mount is gone.
fn held(base: &Path, backend: &str, keys: &[&str]) -> Vec<bool> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LocalStorage::open(backend, &base.join(backend), Default::default()).unwrap();
        let mut out = Vec::new();
        for k in keys {
            out.push(store.stat(&Key::new(*k).unwrap()).await.is_ok());
        }
        out
    })
}

#[test]
fn a_directory_class_places_what_cp_a_copies_into_it() {
    if !can_mount() || !need("setfattr") || !need("getfattr") {
        return;
    }
    let dir = tempdir();
    let base = dir.path();
    let spec = || MountSpec { config: Some(write_config(base)), ..Default::default() };
    let src = base.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();

    let m = Mount::start(base, base, spec());
    fs::create_dir(m.path("fast")).unwrap();
    assert_eq!(setfattr(&m.path("fast"), "fast"), (true, String::new()));
    assert_eq!(getfattr(&m.path("fast")).as_deref(), Some("fast"));
    wait_moved(&m, 1);
    sh(base, &format!("cp -a {}/. {}/", src.display(), m.path("fast").display()));
    // Files below inherit the class: getfattr shows it, a listing of
    // names does not (it was set on the directory, not on them).
    assert_eq!(getfattr(&m.path("fast/sub/b.bin")).as_deref(), Some("fast"));
    let names = sh(base, &format!("getfattr -d -m - {} || true", m.path("fast/a.txt").display()));
    assert!(!names.contains("tierfs.class"), "an inherited class is not listed: {names}");
    let names = sh(base, &format!("getfattr -d -m - {}", m.path("fast").display()));
    assert!(names.contains("user.tierfs.class=\"fast\""), "{names}");
    fs::write(m.path("plain.txt"), b"plain").unwrap();
    assert_eq!(getfattr(&m.path("plain.txt")), None);

    // Refused clearly: a class no backend provides, an unknown one; other
    // `user.` attributes are not stored without --xattrs.
    let (ok, err) = setfattr(&m.path("plain.txt"), "distributed");
    assert!(!ok && err.contains("Operation not supported"), "{err}");
    let (ok, err) = setfattr(&m.path("plain.txt"), "nope");
    assert!(!ok && err.contains("Invalid argument"), "{err}");
    let out = Command::new("setfattr")
        .args(["-n", "user.other", "-v", "x"])
        .arg(m.path("plain.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A file given its own class moves back to the default disk (once
    // written to the store: fsync commits it).
    fs::OpenOptions::new().write(true).open(m.path("fast/a.txt")).unwrap().sync_all().unwrap();
    assert_eq!(setfattr(&m.path("fast/a.txt"), "persistent"), (true, String::new()));
    assert_eq!(getfattr(&m.path("fast/a.txt")).as_deref(), Some("persistent"));
    assert_eq!(fs::read(m.path("fast/a.txt")).unwrap(), b"alpha");
    wait_moved(&m, 2);
    assert!(m.unmount().success());

    // The daemon flushed its journal at unmount: the files are where their classes put them.
    let keys = ["fast/sub/b.bin", "plain.txt", "fast/a.txt"];
    assert_eq!(held(base, "nvme", &keys), [true, false, false]);
    assert_eq!(held(base, "disk", &keys), [false, true, true]);

    // Classes survive a remount; files read back whole.
    let m = Mount::start(base, base, spec());
    assert_eq!(getfattr(&m.path("fast")).as_deref(), Some("fast"));
    assert_eq!(getfattr(&m.path("fast/sub/b.bin")).as_deref(), Some("fast"));
    assert_eq!(getfattr(&m.path("fast/a.txt")).as_deref(), Some("persistent"));
    assert_eq!(fs::read(m.path("fast/sub/b.bin")).unwrap(), vec![7u8; 300_000]);
    // Taking the directory's class off moves its files back, in the background.
    let out =
        Command::new("setfattr").args(["-x", "user.tierfs.class"]).arg(m.path("fast")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(getfattr(&m.path("fast/sub/b.bin")), None);
    assert_eq!(fs::read(m.path("fast/sub/b.bin")).unwrap(), vec![7u8; 300_000]);
    wait_moved(&m, 3);
    assert!(m.unmount().success());
    assert_eq!(held(base, "disk", &["fast/sub/b.bin"]), [true]);
    assert_eq!(held(base, "nvme", &["fast/sub/b.bin"]), [false]);
}
