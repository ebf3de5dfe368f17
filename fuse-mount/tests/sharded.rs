//! A mount over a sharded store (three local disks pooled into one
//! directory): a fourth disk joins, the daemon is SIGKILLed while the
//! rebalance moves files, and the next mount finds every file at once and
//! finishes the move.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const FILES: usize = 3000;

/// What the daemon logs when every key is at its owners.
const SETTLED: &str = "sharded store settled";

fn content(i: usize) -> Vec<u8> {
    let mut v = format!("file {i}\n").into_bytes();
    v.resize(16 * 1024, (i % 251) as u8);
    v
}

fn write_config(base: &Path, owners: usize) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..4 {
        text += &format!("[backends.d{i}]\ntype = \"local\"\npath = {:?}\n", base.join(format!("d{i}")));
    }
    let names: Vec<String> = (0..owners).map(|i| format!("\"d{i}\"")).collect();
    // One key at a time: the rebalance lasts long enough for the kill to land in it.
    text += &format!(
        "[policy]\ntype = \"sharded\"\nbackends = [{}]\nrebalance_concurrency = 1\n",
        names.join(", ")
    );
    let path = base.join("pool.toml");
    fs::write(&path, text).unwrap();
    path
}

fn check_all(m: &Mount) {
    for i in 0..FILES {
        let path = m.path(&format!("pool/{:02}/f{i}", i % 50));
        assert_eq!(fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())), content(i));
    }
}

#[test]
fn sigkill_mid_rebalance_then_the_next_mount_resumes() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let base = dir.path();
    let spec = |config| MountSpec { config: Some(config), ..Default::default() };

    let m = Mount::start(base, base, spec(write_config(base, 3)));
    for d in 0..50 {
        fs::create_dir_all(m.path(&format!("pool/{d:02}"))).unwrap();
    }
    for i in 0..FILES {
        fs::write(m.path(&format!("pool/{:02}/f{i}", i % 50)), content(i)).unwrap();
    }
    assert!(m.unmount().success());

    // A fourth disk joins; the daemon dies while files move to it. (The
    // daemons of this test share one log file.)
    let log_file = base.join(format!("tierfs-{}.log", std::process::id()));
    let settled_in_log = || fs::read_to_string(&log_file).unwrap_or_default().matches(SETTLED).count();
    let settled = |_: &Mount| settled_in_log();
    let before = settled_in_log();
    let m = Mount::start(base, base, spec(write_config(base, 4)));
    assert_eq!(fs::read(m.path("pool/00/f0")).unwrap(), content(0));
    m.signal(libc::SIGKILL);
    let after = settled(&m);
    let log = m.log_text();
    m.kill();
    assert_eq!(
        after, before,
        "the rebalance ended before the kill; raise FILES so it lands mid-move:\n{log}"
    );

    // The next mount reads every file at once, while the move goes on.
    let m = Mount::start(base, base, spec(write_config(base, 4)));
    check_all(&m);
    let start = Instant::now();
    while settled(&m) == after {
        assert!(start.elapsed() < Duration::from_secs(120), "no settled store:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    check_all(&m);
    let listed: usize = (0..50).map(|d| fs::read_dir(m.path(&format!("pool/{d:02}"))).unwrap().count()).sum();
    assert_eq!(listed, FILES);
    assert!(m.unmount().success());

    // Files sit on every disk, the new one included.
    for d in 0..4 {
        let blobs = walk_size(&base.join(format!("d{d}")));
        assert!(blobs > (FILES as u64 * 16 * 1024) / 8, "disk d{d} holds only {blobs} bytes");
    }
}

/// Bytes of the files under `dir`.
fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { walk_size(&entry.path()) } else { meta.len() };
    }
    total
}
