//! Kept listings: what the daemon and the kernel keep, and when they let go.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn kept_listings_show_every_change_made_through_the_mount() {
    let f = fixture().await;
    let dir = f.fs.mkdir(&ROOT_CALLER, ROOT, n("d"), 0o755).await.unwrap().attr.ino;
    f.write_file(dir, "a", b"1").await;
    let names = |v: Vec<(String, Kind, bool)>| v.into_iter().map(|(n, ..)| n).collect::<Vec<_>>();
    assert_eq!(names(f.names(dir, true).await), [".", "..", "a"]);
    // Each kind of change through the mount shows at the next listing.
    let b = f.write_file(dir, "b", &vec![7u8; 3000]).await;
    assert_eq!(names(f.names(dir, true).await), [".", "..", "a", "b"]);
    f.fs.rename(&ROOT_CALLER, dir, n("a"), dir, n("c"), 0).await.unwrap();
    assert_eq!(names(f.names(dir, false).await), [".", "..", "b", "c"]);
    f.fs.unlink(&ROOT_CALLER, dir, n("c")).await.unwrap();
    assert_eq!(names(f.names(dir, true).await), [".", "..", "b"]);
    // A size change (a large streamed write) shows in the listed attributes.
    let opened = f.fs.open(&ROOT_CALLER, b, libc::O_WRONLY).await.unwrap();
    f.fs.write(opened.fh, 0, &vec![9u8; 3 << 20]).await.unwrap();
    f.fs.release(opened.fh).await.unwrap();
    let mut listed = Names(Vec::new());
    let o = f.fs.opendir(&ROOT_CALLER, dir).await.unwrap();
    f.fs.readdir(o.fh, 0, true, &mut listed).await.unwrap();
    f.fs.releasedir(o.fh);
    let sizes: Vec<u64> =
        f.fs.store()
            .children(&f.fs.session(&ROOT_CALLER), "d/")
            .await
            .unwrap()
            .iter()
            .map(|c| c.object.as_ref().map_or(0, |m| m.size))
            .collect();
    assert_eq!(sizes, [3 << 20]);
}

#[tokio::test]
async fn kept_listings_miss_outside_changes_only_for_the_attribute_lifetime() {
    let manager = StorageManager::open(Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap())
        .await
        .unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = SpoolDir::new(spool_dir.path(), 1024, 1 << 20).unwrap();
    let ttl = Duration::from_millis(300);
    let store = Arc::new(Store::new(manager.clone(), true, ttl));
    let fs = TierFs::new(
        store,
        spool,
        IdentityMap::default(),
        FsOptions { attr_ttl: ttl, ..FsOptions::default() },
    );
    let outside = manager.session("someone-else");
    outside.put(&Key::new("x").unwrap(), "1".into(), Default::default()).await.unwrap();
    let session = fs.session(&ROOT_CALLER);
    let names = |c: Arc<Vec<Child>>| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(fs.store().children(&session, "").await.unwrap()), ["x"]);
    // A change made by another client: kept listing first, then the new one.
    outside.put(&Key::new("y").unwrap(), "2".into(), Default::default()).await.unwrap();
    assert_eq!(names(fs.store().children(&session, "").await.unwrap()), ["x"]);
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(names(fs.store().children(&session, "").await.unwrap()), ["x", "y"]);
    // Another principal has its own listing (access control filters them).
    let other = fs.session(&Caller { uid: 1000, gid: 1000, pid: 0 });
    outside.put(&Key::new("z").unwrap(), "3".into(), Default::default()).await.unwrap();
    assert_eq!(names(fs.store().children(&other, "").await.unwrap()), ["x", "y", "z"]);
}

/// Without access rules the kernel keeps a copy of each listing: filled
/// when the daemon lists afresh, reused while the daemon's own is kept, and
/// dropped again by any change through the mount.
#[tokio::test]
async fn the_kernel_keeps_listings_only_while_the_daemon_does() {
    let f = fixture().await;
    let dir = f.fs.mkdir(&ROOT_CALLER, ROOT, n("d"), 0o755).await.unwrap().attr.ino;
    let open = |ino| f.fs.opendir(&ROOT_CALLER, ino);
    assert_eq!(open(dir).await.unwrap().cache, DirCache::Fill);
    assert_eq!(open(dir).await.unwrap().cache, DirCache::Keep);
    let (_, o) = f.fs.create(&ROOT_CALLER, dir, n("new"), 0o644, libc::O_WRONLY).await.unwrap();
    f.fs.release(o.fh).await.unwrap();
    assert_eq!(open(dir).await.unwrap().cache, DirCache::Fill, "a change drops the kernel's copy");
    assert_eq!(open(dir).await.unwrap().cache, DirCache::Keep);
    let names: Vec<String> = f
        .names(dir, false)
        .await
        .into_iter()
        .map(|(name, ..)| name)
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, ["new"]);
}

/// A directory known only by its children is resolved from the kept
/// listing of its parent, without asking the store again.
#[tokio::test]
async fn a_kept_listing_answers_for_the_directories_in_it() {
    let f = fixture().await;
    let outside = f.manager.session("outside");
    outside.put(&Key::new("top/leaf").unwrap(), "x".into(), Default::default()).await.unwrap();
    let top = f.fs.lookup(&ROOT_CALLER, ROOT, n("top")).await.unwrap().attr.ino;
    let stats = || f.manager.metrics().backends["m"].get("stat").map_or(0, |s| s.count);
    let o = f.fs.opendir(&ROOT_CALLER, ROOT).await.unwrap();
    f.fs.releasedir(o.fh);
    let before = stats();
    let attr = f.fs.getattr(&ROOT_CALLER, top, None).await.unwrap().attr;
    assert_eq!(attr.posix.kind, Kind::Dir);
    assert_eq!(stats(), before, "answered from what is kept");
    // Once the listing is dropped (a change through the mount), the store answers.
    f.fs.mkdir(&ROOT_CALLER, ROOT, n("other"), 0o755).await.unwrap();
    assert_eq!(f.fs.getattr(&ROOT_CALLER, top, None).await.unwrap().attr.posix.kind, Kind::Dir);
    assert!(stats() > before);
}
