//! Passthrough reads through a real mount (`--passthrough`): a file opened
//! only to read, kept by the local store as one file, is read by the
//! kernel from that file (the daemon reads none of it), and writers beside
//! such readers keep working; with an audit log, or without the option,
//! every read goes through the daemon (and is audited).

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use common::*;

const CONFIG: &str = r#"
[backends.main]
type = "local"
path = "data"
"#;

/// The same store with an audit log (every read is then recorded).
const AUDITED: &str = r#"
[backends.main]
type = "local"
path = "data"

[audit]
path = "audit/audit.log"
"#;

/// A free port on the loopback interface for the daemon's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Bytes the store handed the daemon so far (`tierfs_bytes_out_total`,
/// every backend and operation), from its metrics at `port`.
fn bytes_out(port: u16) -> u64 {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("reach the metrics");
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("tierfs_bytes_out_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Whether this kernel has FUSE passthrough (6.9 and later).
fn kernel_has_passthrough() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 9)
}

fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", "3").expect("drop the page cache (root)");
}

/// Mounts the store in `dir` configured by `text` with `extra`
/// arguments; returns the mount and the port of its metrics.
fn mount_with(dir: &std::path::Path, text: &str, extra: &[&str]) -> (Mount, u16) {
    let config = dir.join("tierfs.toml");
    fs::write(&config, text).unwrap();
    let port = free_port();
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["--metrics-addr".to_owned(), format!("127.0.0.1:{port}")]);
    let spec = MountSpec { config: Some(config), args, ..MountSpec::default() };
    (Mount::start(dir, &dir.join("data"), spec), port)
}

fn mount(dir: &std::path::Path, extra: &[&str]) -> (Mount, u16) {
    mount_with(dir, CONFIG, extra)
}

/// Writes `len` bytes of `fill` to `path` and closes it.
fn write_file(path: &std::path::Path, fill: u8, len: usize) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(&vec![fill; len]).unwrap();
    close(f).unwrap();
}

/// Reads `path` whole after the page cache is dropped; returns the bytes
/// and how many the store handed the daemon meanwhile.
fn cold_read(port: u16, path: &std::path::Path) -> (Vec<u8>, u64) {
    drop_caches();
    let before = bytes_out(port);
    let bytes = fs::read(path).unwrap();
    (bytes, bytes_out(port) - before)
}

#[test]
fn a_read_only_open_is_served_from_the_stored_file() {
    if !can_mount() {
        return;
    }
    if !kernel_has_passthrough() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true needs a kernel with FUSE passthrough");
        eprintln!("skipped: this kernel has no FUSE passthrough");
        return;
    }
    const LEN: usize = 32 << 20;
    let dir = tempdir();
    let (m, port) = mount(dir.path(), &["--passthrough"]);
    let big = m.path("big");
    write_file(&big, 0x5a, LEN);
    let (bytes, read) = cold_read(port, &big);
    assert!(bytes.len() == LEN && bytes.iter().all(|b| *b == 0x5a), "the content read by passthrough");
    assert!(read < 1 << 20, "the store handed the daemon {read} bytes of a {LEN}-byte passthrough read");

    // A small value (kept in its database record) is read through the daemon.
    write_file(&m.path("small"), 7, 1000);
    assert_eq!(fs::read(m.path("small")).unwrap(), vec![7; 1000]);
    drop(m);

    // Without the option the daemon reads the file itself.
    let (m, port) = mount(dir.path(), &[]);
    let (bytes, read) = cold_read(port, &m.path("big"));
    assert_eq!(bytes.len(), LEN);
    assert!(read >= LEN as u64, "without --passthrough: the store handed the daemon only {read} bytes");
    drop(m);

    // With an audit log every read goes through the daemon and is recorded.
    let (m, port) = mount_with(dir.path(), AUDITED, &["--passthrough"]);
    let audit = dir.path().join("audit/audit.log");
    let reads_of_big = || {
        let text = fs::read_to_string(&audit).unwrap();
        text.lines().filter(|l| l.contains("\"operation\":\"read\"") && l.contains("\"big\"")).count()
    };
    let audited = reads_of_big();
    let (bytes, read) = cold_read(port, &m.path("big"));
    assert_eq!(bytes.len(), LEN);
    assert!(read >= LEN as u64, "with an audit log: the store handed the daemon only {read} bytes");
    eventually("the reads of `big` audited", || reads_of_big() > audited);
}

#[test]
fn writers_beside_passthrough_readers_are_saved_and_seen_by_later_opens() {
    if !can_mount() {
        return;
    }
    const LEN: usize = 4 << 20;
    let dir = tempdir();
    let (m, _) = mount(dir.path(), &["--passthrough"]);
    let path = m.path("f");
    write_file(&path, b'A', LEN);
    drop_caches();

    // A reader holds the file; a writer changes it meanwhile.
    let mut reader = fs::File::open(&path).unwrap();
    let mut head = [0u8; 4];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"AAAA");
    let writer = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    writer.write_all_at(b"BBBB", 0).unwrap();
    writer.write_all_at(b"END!", LEN as u64).unwrap();
    writer.sync_all().unwrap();
    let mut back = [0u8; 4];
    writer.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"BBBB", "the writer reads its own write");

    // An open after the change sees it, while the first reader still holds the file.
    let later = fs::read(&path).unwrap();
    assert_eq!(&later[..4], b"BBBB");
    assert_eq!(&later[LEN..], b"END!");
    close(writer).unwrap();

    // The first reader reads the content it opened, whole, to its end.
    reader.seek(SeekFrom::Start(0)).unwrap();
    let mut old = Vec::new();
    reader.read_to_end(&mut old).unwrap();
    assert_eq!(old.len(), LEN, "the first reader's content keeps its length");
    assert!(old.iter().all(|b| *b == b'A'), "the first reader sees the content it opened");
    drop(reader);

    // A writer first, then a reader: the reader sees the unsaved write.
    let writer = fs::OpenOptions::new().write(true).open(&path).unwrap();
    writer.write_all_at(b"CCCC", 4).unwrap();
    let mut reader = fs::File::open(&path).unwrap();
    let mut both = [0u8; 8];
    reader.read_exact(&mut both).unwrap();
    assert_eq!(&both, b"BBBBCCCC");
    close(writer).unwrap();
    drop(reader);

    // Memory maps and programs run from the mount.
    let copy = m.path("true");
    fs::copy("/bin/true", &copy).unwrap();
    let out = std::process::Command::new(&copy).status().unwrap();
    assert!(out.success(), "a program in the mount runs");

    // Everything was saved: a fresh mount reads the last content.
    m.unmount();
    let (m, _) = mount(dir.path(), &["--passthrough"]);
    let after = fs::read(m.path("f")).unwrap();
    assert_eq!(&after[..8], b"BBBBCCCC");
    assert_eq!(&after[LEN..], b"END!");
    assert_eq!(after.len(), LEN + 4);
}
