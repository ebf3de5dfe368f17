//! `tierfs mount` over the Garage cluster while two of its three nodes are
//! down (the cluster then answers 503): nothing is reported as saved that
//! was not, and every call returns.
//!
//! Built with the `services` feature and run by `scripts/test.sh services`
//! one at a time, after the other distributed tests (they stop and start
//! nodes); without the cluster these tests fail, never skip.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use tierfs_tests::data::pattern;
use tierfs_tests::services::{s3_backend_toml, wait_for_cluster, Down};

use common::*;

/// An `s3` backend on the cluster that gives up on a node quickly, and a
/// health layer that marks it down at the first failure.
fn mount_cluster(dir: &Path) -> Mount {
    cluster_ready();
    let config = dir.join("tierfs.toml");
    if !config.exists() {
        // A prefix of its own, kept across remounts.
        let backend =
            s3_backend_toml("cluster", "timeout_ms = 3000\nconnect_timeout_ms = 1000\nretries = 1\n");
        let policy = "[policy]\ntype = \"always_local\"\nbackend = \"cluster\"\n";
        fs::write(&config, format!("{backend}{policy}")).unwrap();
    }
    let args = vec!["--spool-dir".to_owned(), dir.join("spool").to_str().unwrap().to_owned()];
    Mount::start(dir, &dir.join("unused"), MountSpec { config: Some(config), args, ..MountSpec::default() })
}

/// Unmounts, failing with the daemon's log if it did not end cleanly.
fn unmount(m: Mount) {
    let log = m.log.clone();
    let status = m.unmount();
    assert!(status.success(), "unmount: {status}\n{}", fs::read_to_string(log).unwrap_or_default());
}

/// Waits until the cluster takes writes again.
fn cluster_ready() {
    tokio::runtime::Runtime::new().unwrap().block_on(wait_for_cluster());
}

/// The content of `path`, read as soon as the mount has seen the cluster
/// back (its health probe backs off to 15 s between tries).
fn read_when_back(path: &Path) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        match fs::File::open(path).and_then(|mut f| f.read_to_end(&mut seen)) {
            Ok(_) => return seen,
            Err(e) => {
                assert!(started.elapsed().as_secs() < 60, "reading {path:?} once the cluster is back: {e}")
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn errno(result: std::io::Result<()>) -> Option<i32> {
    result.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

#[test]
fn a_failed_upload_is_reported_and_never_taken_for_saved() {
    let dir = tempdir();
    let m = mount_cluster(dir.path());
    let path = m.path("doc.bin");
    let old = pattern(1, 0, 2 << 20);
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(&old).unwrap();
    f.sync_all().unwrap();
    close(f).unwrap();

    // Rewritten from empty: the first MiB starts streaming to the store;
    // the second goes in while the cluster cannot take writes.
    let new = pattern(2, 0, 2 << 20);
    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    f.write_all(&new[..1 << 20]).unwrap();
    let down = Down::stop(&[2, 3]);
    let written = f.write_all(&new[1 << 20..]);
    let closed = close(f);
    // A second descriptor, opened before the cluster is back and synced
    // after: the failed upload is its error unless an earlier call already
    // reported it.
    let second = fs::OpenOptions::new().read(true).open(&path);
    down.restart();
    cluster_ready();
    let synced = match second {
        Ok(f) => errno(f.sync_all()),
        Err(e) => Some(e.raw_os_error().unwrap_or(-1)),
    };
    let reported = [errno(written), errno(closed), synced];
    eprintln!("errno of write, close, open and fsync: {reported:?}");
    assert!(
        reported.iter().any(|e| e.is_some_and(|e| e == libc::EIO)),
        "the failed upload was never reported as EIO: {reported:?}"
    );

    // Whatever the file holds now is what the store holds, old or new
    // whole, and it is the same after a remount.
    let seen = read_when_back(&path);
    // (Empty: the truncation at open reached the store, the upload not.)
    assert!(
        seen == old || seen == new || seen.is_empty(),
        "the file holds {} bytes, of neither version and not empty",
        seen.len()
    );
    unmount(m);
    let m = mount_cluster(dir.path());
    let stored = read_when_back(&m.path("doc.bin"));
    assert!(
        stored == seen,
        "the mount showed {} bytes, and the store holds {} (old: {}, new: {})",
        seen.len(),
        stored.len(),
        stored == old,
        stored == new
    );
    unmount(m);
}

#[test]
fn fsync_in_an_outage_returns_and_the_change_is_kept() {
    let dir = tempdir();
    let m = mount_cluster(dir.path());
    let path = m.path("small.txt");
    fs::write(&path, b"before").unwrap();
    fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync with the cluster whole: {e}"));

    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    let down = Down::stop(&[2, 3]);
    f.write_all(b"during the outage").unwrap();
    let started = Instant::now();
    let synced = f.sync_all();
    let waited = started.elapsed();
    eprintln!("fsync in the outage returned {synced:?} after {waited:?}");
    assert_eq!(errno(synced), Some(libc::EIO), "fsync with the cluster down did not fail");
    // Kept: the mount still shows the change, and once the cluster is back
    // it is committed.
    assert_eq!(fs::read(&path).unwrap(), b"during the outage");
    down.restart();
    cluster_ready();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match f.sync_all() {
            Ok(()) => break,
            Err(e) => assert!(attempts < 60, "fsync still fails after the cluster came back: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    close(f).unwrap();
    unmount(m);
    let m = mount_cluster(dir.path());
    assert_eq!(read_when_back(&m.path("small.txt")), b"during the outage");
    unmount(m);
}
