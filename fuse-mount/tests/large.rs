//! A 4 GiB file copied into the mount and back out streams: the daemon
//! stays under 200 MiB resident. Ignored by default (it moves 12 GiB
//! through the disk); `scripts/test.sh fuse` runs it.

mod common;

use std::fs;
use std::io::{Read, Write};

use common::*;

const SIZE: u64 = 4 << 30;
const BLOCK: usize = 1 << 20;
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// Block `i` of the test file: its index and a position-dependent pattern.
fn block(i: u64, buf: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

#[test]
#[ignore = "moves 12 GiB; run by scripts/test.sh fuse"]
fn four_gib_in_and_out_in_bounded_memory() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    // The file in the store, its spool while written, and the copy out.
    need_free_space(dir.path(), 3 * SIZE + (1 << 30));
    let m = Mount::new(dir.path());
    let mut buf = vec![0u8; BLOCK];
    let mut f = fs::File::create(m.path("big")).unwrap();
    for i in 0..SIZE / BLOCK as u64 {
        block(i, &mut buf);
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::metadata(m.path("big")).unwrap().len(), SIZE);
    // Out: with cp to a file outside, then checked block by block.
    let out = dir.path().join("out");
    run(dir.path(), "cp", &[m.path("big").to_str().unwrap(), out.to_str().unwrap()]);
    let mut f = fs::File::open(&out).unwrap();
    let mut want = vec![0u8; BLOCK];
    for i in 0..SIZE / BLOCK as u64 {
        f.read_exact(&mut buf).unwrap();
        block(i, &mut want);
        assert!(buf == want, "block {i} differs");
    }
    drop(f);
    fs::remove_file(&out).unwrap();
    let peak = peak_rss_kib(m.pid());
    eprintln!("daemon peak RSS: {} MiB", peak / 1024);
    assert!(peak > 0 && peak < RSS_LIMIT_KIB, "daemon peak RSS {peak} KiB is over {RSS_LIMIT_KIB} KiB");
    fs::remove_file(m.path("big")).unwrap();
    assert!(m.unmount().success());
}
