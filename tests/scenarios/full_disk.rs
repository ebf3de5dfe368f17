//! A local backend on a device that fills up: writes fail with a clear
//! out-of-space error, nothing is half-written, and the backend keeps
//! serving reads and deletes (a full disk is not an outage). Runs on a real
//! 8 MiB tmpfs, so it needs root (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use tierfs_core::{Config, ErrorKind, Key, Storage, StorageManager};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mounting a tmpfs needs root, which CI=true requires"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed as root");
        Some(SmallDisk { _dir: dir, path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn a_full_device_refuses_writes_clearly_and_keeps_serving() {
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let text = format!("[backends.main]\ntype = \"local\"\npath = {:?}\n", disk.path().join("store"));
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store = manager.session("t");
    store.put(&key("small"), Bytes::from_static(b"kept"), Default::default()).await.unwrap();

    // Larger than the device: as one value, and streamed.
    let big = Bytes::from(vec![7u8; 16 << 20]);
    let e = store.put(&key("big"), big.clone(), Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_out_of_space(), "the error does not say the device is full: {e}");
    assert!(e.to_string().contains("No space left"), "{e}");
    let mut w = store.write(&key("streamed"), Default::default()).await.unwrap();
    let mut failed = None;
    for chunk in big.chunks(1 << 20) {
        if let Err(e) = w.write(Bytes::copy_from_slice(chunk)).await {
            failed = Some(e);
            break;
        }
    }
    // Chunks go to the blob file as they come, so a write fails, not `finish`.
    let e = failed.expect("16 MiB of writes into an 8 MiB device all succeeded");
    // What was written cannot be published, and its space is back at once
    // (`w` still lives; checked below).
    assert!(w.write(Bytes::from_static(b"more")).await.is_err());
    assert!(e.is_out_of_space(), "{e}");

    // Nothing half-written, and the space of the failed values is back.
    for k in ["big", "streamed"] {
        assert_eq!(store.get(&key(k)).await.unwrap_err().kind(), ErrorKind::NotFound, "{k}");
    }
    assert!(manager.backend("main").unwrap().is_healthy(), "a full device marked the backend down");
    assert_eq!(store.get(&key("small")).await.unwrap(), Bytes::from_static(b"kept"));
    store.put(&key("after"), Bytes::from(vec![1u8; 4 << 20]), Default::default()).await.unwrap();
    store.delete(&key("after")).await.unwrap();
    drop(w);
    manager.shutdown().await.unwrap();
}

/// Small values live inside the database: filling the device with them
/// makes the database's own commit fail. Reads go on at once, and writes
/// work again once space is freed, without a restart.
#[tokio::test]
async fn a_database_filled_by_small_values_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let text = format!("[backends.main]\ntype = \"local\"\npath = {:?}\n", disk.path().join("store"));
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store = manager.session("t");
    let value = Bytes::from(vec![9u8; 100_000]);
    let mut written = Vec::new();
    let mut failure = None;
    for i in 0..200 {
        let k = key(&format!("small/{i:03}"));
        match store.put(&k, value.clone(), Default::default()).await {
            Ok(_) => written.push(k),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("20 MB of small values fit an 8 MiB device");
    assert!(e.is_out_of_space(), "{e}");
    assert!(written.len() > 10, "only {} values fit", written.len());
    // Reads of what was acknowledged go on at once.
    for k in &written {
        assert_eq!(store.get(k).await.unwrap_or_else(|e| panic!("{k}: {e}")).len(), 100_000);
    }
    // Deleting frees space; writes then work again.
    for k in &written[..written.len() / 2] {
        store.delete(k).await.unwrap_or_else(|e| panic!("delete {k}: {e}"));
    }
    store.put(&key("small/after"), value.clone(), Default::default()).await.unwrap();
    assert_eq!(store.get(&key("small/after")).await.unwrap().len(), 100_000);
    manager.shutdown().await.unwrap();
    drop(store);
    drop(manager);
    // A restart finds exactly what was acknowledged.
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store = manager.session("t");
    for (i, k) in written.iter().enumerate() {
        let found = store.get(k).await;
        if i < written.len() / 2 {
            assert_eq!(found.unwrap_err().kind(), ErrorKind::NotFound, "{k} was deleted");
        } else {
            assert_eq!(found.unwrap().len(), 100_000, "{k}");
        }
    }
    assert_eq!(store.get(&key("small/after")).await.unwrap().len(), 100_000);
    drop(store);
    drop(manager);
    drop(disk);
}

/// A plugin on a full device (the appendlog example, which keeps every
/// value in one append-only file): its `OUT_OF_SPACE` status reaches every
/// face as out-of-space, the health layer keeps the backend up, reads go
/// on, and writes work again once space is freed on the device, without a
/// restart. The log is never compacted, so here space is freed beside it.
#[tokio::test]
async fn a_plugin_on_a_full_device_is_not_an_outage() {
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![1u8; 2 << 20]).unwrap();
    let text = format!(
        "plugins = [{:?}]\n[backends.log]\ntype = \"appendlog\"\npath = {:?}\n",
        tierfs_tests::plugins::appendlog_library(),
        disk.path().join("values.log")
    );
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store = manager.session("t");
    let value = Bytes::from(vec![5u8; 100_000]);
    let mut written = Vec::new();
    let mut failure = None;
    for i in 0..200 {
        let k = key(&format!("log/{i:03}"));
        match store.put(&k, value.clone(), Default::default()).await {
            Ok(_) => written.push(k),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("20 MB of values fit an 8 MiB device beside a 2 MiB file");
    assert!(e.is_out_of_space(), "the plugin's error does not say the device is full: {e}");
    assert!(e.to_string().contains("No space left"), "{e}");
    assert!(written.len() > 10, "only {} values fit", written.len());
    // Not an outage: a second write fails the same way (no "marked
    // unhealthy"), and every acknowledged value reads back whole.
    let again = store.put(&key("log/again"), value.clone(), Default::default()).await.unwrap_err();
    assert!(again.is_out_of_space(), "the second failed write is not out-of-space: {again}");
    for k in &written {
        assert_eq!(store.get(k).await.unwrap_or_else(|e| panic!("{k}: {e}")), value, "{k}");
    }
    assert!(store.stat(&written[0]).await.is_ok());
    // Space freed on the device: writes work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    store.put(&key("log/after"), value.clone(), Default::default()).await.unwrap();
    store.delete(&written[0]).await.unwrap();
    manager.shutdown().await.unwrap();
    drop(store);
    drop(manager);
    // A restart finds exactly what was acknowledged, and nothing torn.
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store = manager.session("t");
    assert_eq!(store.get(&written[0]).await.unwrap_err().kind(), ErrorKind::NotFound);
    for k in &written[1..] {
        assert_eq!(store.get(k).await.unwrap_or_else(|e| panic!("{k}: {e}")), value, "{k}");
    }
    assert_eq!(store.get(&key("log/after")).await.unwrap(), value);
    assert_eq!(store.get(&key("log/again")).await.unwrap_err().kind(), ErrorKind::NotFound);
    drop(store);
    drop(manager);
    drop(disk);
}

/// A write-back cache whose primary fills up: writes were acknowledged
/// from the dirty set, so its flushes fail; the entries stay dirty and
/// readable (nothing acknowledged is dropped), the primary is not marked
/// down, and once the dirty set is full a new write is refused with an
/// out-of-space error. Freed space lets the flush, and the shutdown, put
/// everything in the primary, where a restart finds it.
#[tokio::test]
async fn a_write_back_cache_over_a_full_primary_keeps_what_it_acknowledged() {
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![1u8; 5 << 20]).unwrap();
    let store = disk.path().join("store");
    let text = format!(
        "[backends.main]\ntype = \"local\"\npath = {store:?}\n[policy]\ntype = \"prefer_cache\"\nprimary = \"main\"\n\
         cache = {{ capacity_mib = 64, write = \"back\", max_dirty_mib = 2, flush_interval_ms = 50 }}\n"
    );
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let store_session = manager.session("t");
    let value = Bytes::from(vec![3u8; 100_000]);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..300 {
        let k = key(&format!("wb/{i:03}"));
        match store_session.put(&k, value.clone(), Default::default()).await {
            Ok(_) => acknowledged.push(k),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("30 MB of writes fit a 2 MiB dirty set over a 3 MiB primary");
    assert!(e.is_out_of_space(), "the refusal does not say the primary is full: {e}");
    assert!(acknowledged.len() > 20, "only {} writes were acknowledged", acknowledged.len());
    // Every acknowledged write reads back, from the primary or the dirty set.
    for k in &acknowledged {
        assert_eq!(store_session.get(k).await.unwrap_or_else(|e| panic!("{k}: {e}")), value, "{k}");
    }
    // Space is freed: the flusher (or the shutdown) puts everything in.
    std::fs::remove_file(&filler).unwrap();
    manager.shutdown().await.unwrap_or_else(|e| panic!("the flush after freeing space failed: {e}"));
    drop(store_session);
    drop(manager);
    let manager = StorageManager::open(Config::parse(&text, None).unwrap()).await.unwrap();
    let session = manager.session("t");
    for k in &acknowledged {
        assert_eq!(session.get(k).await.unwrap_or_else(|e| panic!("{k} was lost: {e}")), value, "{k}");
    }
    manager.shutdown().await.unwrap();
    drop(session);
    drop(manager);
    drop(disk);
}
