//! Changes to large files travel as patches; preallocated files stream.

use super::*;

/// Calls and bytes written of `op` on the fixture's backend so far.
fn counted(f: &Fixture, op: &str) -> (u64, u64) {
    let metrics = f.manager.metrics();
    metrics
        .backends
        .values()
        .filter_map(|ops| ops.get(op))
        .fold((0, 0), |(c, b), s| (c + s.count, b + s.bytes_in))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn changes_to_a_large_file_send_only_the_changed_ranges() {
    for f in every_store().await {
        check_changes_to_a_large_file(f).await;
    }
}

async fn check_changes_to_a_large_file(f: Fixture) {
    let mut model = pattern(1 << 20, 1);
    let ino = f.write_file(ROOT, "db", &model).await;
    assert_eq!(f.stored("db").await.unwrap(), model);
    let (writes_before, written_before) = (counted(&f, "write"), counted(&f, "put"));

    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_RDWR).await.unwrap();
    f.fs.write(o.fh, 500_000, b"HELLO").await.unwrap();
    f.fs.write(o.fh, 1 << 20, b"TAIL").await.unwrap();
    model[500_000..500_005].copy_from_slice(b"HELLO");
    model.extend_from_slice(b"TAIL");
    // Reads merge the changes with the stored bytes.
    let read = f.fs.read(o.fh, 499_990, 30).await.unwrap();
    assert_eq!(&read[..], &model[499_990..500_020]);
    let read = f.fs.read(o.fh, (1 << 20) - 2, 100).await.unwrap();
    assert_eq!(&read[..], &model[(1 << 20) - 2..]);
    assert_eq!(f.fs.getattr(&ROOT_CALLER, ino, Some(o.fh)).await.unwrap().attr.size, model.len() as u64);
    f.fs.fsync(o.fh).await.unwrap();
    assert_eq!(f.stored("db").await.unwrap(), model);
    let (patches, patched) = counted(&f, "patch");
    assert_eq!(patches, 1, "one fsync, one patch");
    assert_eq!(patched, 9, "the patch carries the changed bytes only");
    assert_eq!((counted(&f, "write"), counted(&f, "put")), (writes_before, written_before), "no rewrite");

    // Extended (a truncate is committed at once: a patch of the length
    // alone), then written past the old end: zeros between.
    let set = SetAttr { size: Some(model.len() as u64 + 1000), fh: Some(o.fh), ..SetAttr::default() };
    f.fs.setattr(&ROOT_CALLER, ino, set).await.unwrap();
    assert_eq!(counted(&f, "patch"), (2, 9));
    let at = model.len() as u64 + 500;
    f.fs.write(o.fh, at, b"far").await.unwrap();
    model.resize(model.len() + 1000, 0);
    model[at as usize..at as usize + 3].copy_from_slice(b"far");
    let read = f.fs.read(o.fh, at - 10, 20).await.unwrap();
    assert_eq!(&read[..], &model[at as usize - 10..at as usize + 10]);
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(f.stored("db").await.unwrap(), model);
    assert_eq!(counted(&f, "patch"), (3, 12), "the release sent one more patch");

    // Appends are appends.
    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
    f.fs.write(o.fh, 0, b"appended").await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    model.extend_from_slice(b"appended");
    assert_eq!(f.stored("db").await.unwrap(), model);
    assert_eq!(counted(&f, "patch"), (4, 20));

    // Cutting into the stored bytes copies the file in, then goes on as before.
    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_RDWR).await.unwrap();
    f.fs.write(o.fh, 10, b"x").await.unwrap();
    let set = SetAttr { size: Some(300_000), fh: Some(o.fh), ..SetAttr::default() };
    f.fs.setattr(&ROOT_CALLER, ino, set).await.unwrap();
    model[10] = b'x';
    model.truncate(300_000);
    assert_eq!(f.fs.read(o.fh, 299_990, 100).await.unwrap()[..], model[299_990..]);
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(f.stored("db").await.unwrap(), model);
    assert_eq!(f.read_file(ino).await, model);
}

#[tokio::test]
async fn preallocated_files_written_in_order_stream() {
    for f in every_store().await {
        check_preallocated_files_stream(f).await;
    }
}

async fn check_preallocated_files_stream(f: Fixture) {
    let len = 3u64 << 20;
    let data = pattern(len as usize, 7);
    let (entry, o) = f.fs.create(&ROOT_CALLER, ROOT, n("image"), 0o644, libc::O_RDWR).await.unwrap();
    let ino = entry.attr.ino;
    f.fs.fallocate(o.fh, 0, len, 0).await.unwrap();
    assert_eq!(f.fs.getattr(&ROOT_CALLER, ino, Some(o.fh)).await.unwrap().attr.size, len);
    assert_eq!(f.fs.read(o.fh, len - 4, 100).await.unwrap()[..], [0, 0, 0, 0]);
    let streams_before = counted(&f, "write").0;
    for (i, chunk) in data.chunks(64 << 10).enumerate() {
        f.fs.write(o.fh, (i * (64 << 10)) as u64, chunk).await.unwrap();
    }
    assert_eq!(f.fs.getattr(&ROOT_CALLER, ino, Some(o.fh)).await.unwrap().attr.size, len);
    f.fs.fsync(o.fh).await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(counted(&f, "write").0, streams_before + 1, "written as one stream");
    assert_eq!(counted(&f, "patch").0, 0);
    assert!(f.stored("image").await.unwrap() == data);

    // Extended with truncate, written only part way: the rest is zeros.
    let (entry, o) = f.fs.create(&ROOT_CALLER, ROOT, n("partial"), 0o644, libc::O_WRONLY).await.unwrap();
    let set = SetAttr { size: Some(len), fh: Some(o.fh), ..SetAttr::default() };
    f.fs.setattr(&ROOT_CALLER, entry.attr.ino, set).await.unwrap();
    for (i, chunk) in data[..1 << 20].chunks(64 << 10).enumerate() {
        f.fs.write(o.fh, (i * (64 << 10)) as u64, chunk).await.unwrap();
    }
    f.fs.release(o.fh).await.unwrap();
    let stored = f.stored("partial").await.unwrap();
    assert_eq!(stored.len() as u64, len);
    assert!(stored[..1 << 20] == data[..1 << 20]);
    assert!(stored[1 << 20..].iter().all(|b| *b == 0));

    // A write out of order after an extension: the zeros become content.
    let (entry, o) = f.fs.create(&ROOT_CALLER, ROOT, n("holes"), 0o644, libc::O_RDWR).await.unwrap();
    f.fs.fallocate(o.fh, 0, 5000, 0).await.unwrap();
    f.fs.write(o.fh, 0, b"head").await.unwrap();
    f.fs.write(o.fh, 4000, b"mid").await.unwrap();
    f.fs.write(o.fh, 0, b"H").await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    let mut expected = vec![0u8; 5000];
    expected[..4].copy_from_slice(b"Head");
    expected[4000..4003].copy_from_slice(b"mid");
    assert_eq!(f.stored("holes").await.unwrap(), expected);
    assert_eq!(f.read_file(entry.attr.ino).await, expected);
}

#[tokio::test]
async fn laid_out_files_are_patched_to_length_then_overwritten_as_a_stream() {
    for f in every_store().await {
        check_laid_out_files(f).await;
    }
}

async fn check_laid_out_files(f: Fixture) {
    // fio's layout: create, preallocate, close. The length reaches the
    // store by a patch; no zeros are streamed.
    let len = 12u64 << 20;
    let (entry, o) = f.fs.create(&ROOT_CALLER, ROOT, n("laid"), 0o644, libc::O_RDWR).await.unwrap();
    let ino = entry.attr.ino;
    f.fs.fallocate(o.fh, 0, len, 0).await.unwrap();
    let streams = counted(&f, "write").0;
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(counted(&f, "patch"), (1, 0), "one patch, no byte carried");
    assert_eq!(counted(&f, "write").0, streams);
    let stored = f.stored("laid").await.unwrap();
    assert!(stored.len() as u64 == len && stored.iter().all(|b| *b == 0));

    // Then written in order from the start: one stream, not kept as changes.
    let data = pattern(len as usize, 3);
    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_WRONLY).await.unwrap();
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        f.fs.write(o.fh, (i << 20) as u64, chunk).await.unwrap();
    }
    f.fs.fsync(o.fh).await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(counted(&f, "write").0, streams + 1, "overwritten as one stream");
    assert_eq!(counted(&f, "patch").0, 1);
    assert!(f.stored("laid").await.unwrap() == data);

    // Overwritten in order part of the way: the stored rest is kept.
    let new = pattern(9 << 20, 9);
    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_RDWR).await.unwrap();
    for (i, chunk) in new.chunks(1 << 20).enumerate() {
        f.fs.write(o.fh, (i << 20) as u64, chunk).await.unwrap();
    }
    assert_eq!(f.fs.getattr(&ROOT_CALLER, ino, Some(o.fh)).await.unwrap().attr.size, len);
    // A read in the middle publishes the stream with the stored tail.
    let mid = f.fs.read(o.fh, (9 << 20) - 2, 4).await.unwrap();
    assert_eq!(&mid[..2], &new[(9 << 20) - 2..]);
    assert_eq!(&mid[2..], &data[9 << 20..(9 << 20) + 2]);
    f.fs.release(o.fh).await.unwrap();
    let mut expected = data.clone();
    expected[..9 << 20].copy_from_slice(&new);
    assert!(f.stored("laid").await.unwrap() == expected);

    // Overwritten in order, then cut inside the stored tail.
    let o = f.fs.open(&ROOT_CALLER, ino, libc::O_RDWR).await.unwrap();
    for (i, chunk) in data[..9 << 20].chunks(1 << 20).enumerate() {
        f.fs.write(o.fh, (i << 20) as u64, chunk).await.unwrap();
    }
    let set = SetAttr { size: Some(10 << 20), fh: Some(o.fh), ..SetAttr::default() };
    f.fs.setattr(&ROOT_CALLER, ino, set).await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    assert!(f.stored("laid").await.unwrap() == data[..10 << 20]);
    assert_eq!(f.read_file(ino).await, data[..10 << 20]);
}
