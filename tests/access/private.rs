//! The store's files are private to the daemon's user; with access rules,
//! a store or audit log other users can read is refused at start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bytes::Bytes;
use tierfs_core::{Config, ErrorKind, Key, Storage, StorageManager};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn config(dir: &Path, access: bool, audit_extra: &str) -> Config {
    let access = if access {
        "[access]\ndefault = \"none\"\n[[access.rules]]\nprincipal = \"root\"\nresource = \"*\"\nlevel = \"full\"\n"
    } else {
        ""
    };
    let text = format!(
        "[backends.main]\ntype = \"local\"\npath = \"{}/store\"\n{access}[audit]\npath = \"{}/audit/audit.log\"\n{audit_extra}",
        dir.display(),
        dir.display()
    );
    Config::parse(&text, None).unwrap()
}

#[tokio::test]
async fn files_are_created_private_and_exposed_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = StorageManager::open(config(dir.path(), true, "")).await.unwrap();
    let root = m.session("root");
    root.put(&Key::new("big").unwrap(), Bytes::from(vec![7u8; 600_000]), Default::default()).await.unwrap();
    m.shutdown().await.unwrap();
    drop(root);
    drop(m);
    let d = dir.path();
    for (path, want) in [
        (d.join("store"), 0o700),
        (d.join("store/tierfs.redb"), 0o600),
        (d.join("store/blobs"), 0o700),
        (d.join("audit"), 0o700),
        (d.join("audit/audit.log"), 0o600),
        (d.join("audit/audit.log.key"), 0o600),
        (d.join("audit/audit.log.seal"), 0o600),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    let blobs: Vec<_> =
        std::fs::read_dir(d.join("store/blobs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(blobs.len(), 1);
    assert_eq!(mode(&blobs[0]), 0o600);

    // Readable by others: refused while access rules exist, naming the fix.
    for (path, fix) in [
        (d.join("store"), "chmod 700"),
        (d.join("store/tierfs.redb"), "chmod 600"),
        (d.join("audit/audit.log"), "chmod 600"),
        (d.join("audit/audit.log.key"), "chmod 600"),
    ] {
        let before = mode(&path);
        chmod(&path, if before == 0o700 { 0o755 } else { 0o644 });
        let e = StorageManager::open(config(d, true, "")).await.expect_err("an exposed file was accepted");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains(&format!("{fix} {}", path.display())), "{e}");
        // Without access rules the same store opens (nothing to get around).
        if !path.ends_with("audit.log.key") {
            drop(StorageManager::open(config(d, false, "")).await.unwrap());
        }
        chmod(&path, before);
    }
    drop(StorageManager::open(config(d, true, "")).await.unwrap());
}

#[tokio::test]
async fn an_audit_group_may_read_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // gid 0 exists everywhere; the test runs as root, as the suite does.
    let m = StorageManager::open(config(dir.path(), true, "group = \"root\"\n")).await.unwrap();
    m.session("root").stat(&Key::new("x").unwrap()).await.unwrap_err();
    drop(m);
    let log = dir.path().join("audit/audit.log");
    assert_eq!(mode(&log), 0o640);
    assert_eq!(std::fs::metadata(&log).unwrap().gid(), 0);
    assert_eq!(mode(&dir.path().join("audit")), 0o750);
    // The key and seal stay the daemon's alone.
    assert_eq!(mode(&dir.path().join("audit/audit.log.key")), 0o600);
    // 0640 passes the check with a group; the group removed, the log is
    // private again; a log made readable by hand is refused.
    drop(StorageManager::open(config(dir.path(), true, "group = \"root\"\n")).await.unwrap());
    drop(StorageManager::open(config(dir.path(), true, "")).await.unwrap());
    assert_eq!(mode(&log), 0o600);
    chmod(&log, 0o644);
    let e = StorageManager::open(config(dir.path(), true, "")).await.unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    let e = StorageManager::open(config(dir.path(), true, "group = \"no-such-group-tierfs\"\n"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no group named `no-such-group-tierfs`"), "{e}");
}
