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
