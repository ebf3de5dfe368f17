//! Scenarios of `patch` on `LocalStorage`: what a reader holding mapped
//! bytes keeps, what a restart replays, and that a patch writes what it
//! changes rather than the value.

use bytes::Bytes;
use tierfs_core::{Condition, Key, LocalStorage, Patch, PutOptions, Storage};
use tierfs_tests::data::pattern;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Held by the tests of this file that write much, so that the one that
/// counts the process's written bytes does not count theirs.
static WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bytes written to the disk by this process so far (`/proc/self/io`).
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

#[tokio::test]
async fn bytes_a_reader_holds_never_change_under_it() {
    let _alone = WRITERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    let k = key("held.bin");
    let original = Bytes::from(pattern(1, 0, 3 << 20));
    store.put(&k, original.clone(), PutOptions::default()).await.unwrap();
    // A whole get and a long ranged get map the blob; while they live the
    // patch copies the blob instead of changing it in place.
    let held = store.get(&k).await.unwrap();
    let held_range = store.get_range(&k, 0..(2 << 20)).await.unwrap();
    store.patch(&k, &Patch::new().write(10, vec![0xEE; 100]), &Condition::Exists).await.unwrap();
    assert!(held == original, "a held get changed under its reader");
    assert!(held_range[..] == original[..2 << 20], "a held range changed under its reader");
    let now = store.get(&k).await.unwrap();
    assert_eq!(&now[10..110], &[0xEE; 100][..]);
    drop((held, held_range, now));
    // Nothing held: later patches go in place, and reads see them.
    store.patch(&k, &Patch::new().write(20, vec![0xDD; 10]), &Condition::Exists).await.unwrap();
    let after = store.get(&k).await.unwrap();
    assert_eq!(&after[10..20], &[0xEE; 10][..]);
    assert_eq!(&after[20..30], &[0xDD; 10][..]);
    assert_eq!(&after[30..110], &[0xEE; 80][..]);
    assert_eq!(&after[110..], &original[110..]);
}

#[tokio::test]
async fn a_small_change_to_a_large_value_writes_about_the_change() {
    let _alone = WRITERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    let k = key("large.bin");
    let len = 64 << 20;
    store.put(&k, Bytes::from(vec![7u8; len]), PutOptions::default()).await.unwrap();
    // The first patch of a blob may find it mapped by nobody: in place.
    store.patch(&k, &Patch::new().write(1, vec![1]), &Condition::Exists).await.unwrap();
    let before = written_bytes();
    for i in 0..20u64 {
        let patch = Patch::new()
            .write(100_000 + i * 3_000_000, vec![9u8; 4096])
            .write(len as u64 + i * 4096, vec![8u8; 4096]);
        store.patch(&k, &patch, &Condition::Exists).await.unwrap();
    }
    let written = written_bytes() - before;
    // 20 patches of 8 KiB each: their bytes go to the redo record and the
    // blob, plus database pages; nowhere near one 64 MiB rewrite.
    assert!(written < 8 << 20, "20 small patches wrote {written} bytes");
    let value = store.get(&k).await.unwrap();
    assert_eq!(value.len(), len + 20 * 4096);
    assert_eq!(&value[3_100_000..3_104_096], &[9u8; 4096][..]);
    assert_eq!(&value[len..len + 4096], &[8u8; 4096][..]);
    assert_eq!(value[1], 1);
    assert_eq!(value[2], 7);
}

#[tokio::test]
async fn patched_values_survive_a_reopen() {
    let _alone = WRITERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let k = key("kept.bin");
    let mut model = pattern(2, 0, 1 << 20);
    {
        let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
        store.put(&k, Bytes::from(model.clone()), PutOptions::default()).await.unwrap();
        for i in 0..5u64 {
            let patch = Patch::new().write(i * 100_000, vec![i as u8; 5000]);
            store.patch(&k, &patch, &Condition::Exists).await.unwrap();
            model = patch.apply_to(&model).unwrap();
        }
    }
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    assert!(store.get(&k).await.unwrap()[..] == model[..]);
    assert_eq!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count(), 1, "one blob, patched in place");
}

#[tokio::test]
async fn an_opened_file_keeps_the_value_it_was_opened_with() {
    let _alone = WRITERS.lock().await;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
    let k = key("opened.bin");
    let original = pattern(2, 0, 2 << 20);
    store.put(&k, Bytes::from(original.clone()), PutOptions::default()).await.unwrap();
    let opened = store.open_file(&k).await.unwrap().expect("a blob is one file");
    assert_eq!(opened.meta().size, original.len() as u64);
    assert_eq!(opened.file().metadata().unwrap().len(), original.len() as u64);
    // A patch and an overwrite while it is held leave its bytes alone.
    store.patch(&k, &Patch::new().write(0, vec![0xAB; 4096]), &Condition::Exists).await.unwrap();
    let mut held = vec![0u8; original.len()];
    opened.file().read_exact_at(&mut held, 0).unwrap();
    assert!(held == original, "a patch changed the opened file");
    assert_eq!(&store.get_range(&k, 0..4096).await.unwrap()[..], &[0xAB; 4096][..]);
    store.put(&k, Bytes::from(vec![1u8; 3 << 20]), PutOptions::default()).await.unwrap();
    opened.file().read_exact_at(&mut held, 0).unwrap();
    assert!(held == original, "an overwrite changed the opened file");
    drop(opened);

    // A value kept in its record, and a missing key.
    let small = key("small");
    store.put(&small, Bytes::from_static(b"tiny"), PutOptions::default()).await.unwrap();
    assert!(store.open_file(&small).await.unwrap().is_none(), "an inline value has no file");
    let missing = store.open_file(&key("missing")).await.unwrap_err();
    assert_eq!(missing.kind(), tierfs_core::ErrorKind::NotFound);
}
