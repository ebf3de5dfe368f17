//! Changes of open files, per writer: committed as their writer, refused
//! bytes never published.

use super::*;

const ALICE: Caller = Caller { uid: 4_000_001, gid: 4_000_001, pid: 0 };

const SHARED: &str = r#"
[backends.m]
type = "memory"
[access]
default = "none"
[[access.rules]]
principal = "root"
resource = "*"
level = "full"
[[access.rules]]
principal = "alice"
resource = "shared/"
level = "full"
"#;

/// `SHARED` with alice narrowed to reading `shared/`, and an audit log in `dir`.
fn shared_config(dir: &std::path::Path, narrowed: bool) -> Config {
    let level = if narrowed { "read" } else { "full" };
    let text = SHARED.replace(
        "resource = \"shared/\"\nlevel = \"full\"",
        &format!("resource = \"shared/\"\nlevel = \"{level}\""),
    );
    Config::parse(&format!("{text}[audit]\npath = \"{}/audit.log\"\n", dir.display()), None).unwrap()
}

async fn shared_fixture() -> (Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(shared_config(dir.path(), false)).await.unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = SpoolDir::new(spool_dir.path(), 1024, 1 << 20).unwrap();
    let store = Arc::new(Store::new(manager.clone(), true, LISTING_TTL));
    let mut ids = IdentityMap::default();
    ids.add_user("4000001=alice").unwrap();
    ids.add_group("4000001=alice").unwrap();
    ids.add_user("0=root").unwrap();
    ids.add_group("0=root").unwrap();
    let fs = TierFs::new(store, spool, ids, FsOptions::default());
    (Fixture { fs, manager, dirs: vec![spool_dir] }, dir)
}

/// Who the audit log says wrote `key`, in order (allowed writes and batches).
fn writers_of(f: &Fixture, key: &str) -> Vec<String> {
    let query = tierfs_core::audit::AuditQuery { key_prefix: Some(key.into()), ..Default::default() };
    f.manager
        .session("root")
        .audit_log(&query)
        .unwrap()
        .into_iter()
        .filter(|r| r.keys.iter().any(|k| k == key))
        .filter(|r| r.operation == "batch" || r.operation == "write")
        .filter(|r| {
            r.result == tierfs_core::audit::AuditResult::Denied
                || r.detail.as_deref() != Some("checked ahead of the change")
        })
        .map(|r| format!("{} {:?}", r.principal, r.result))
        .collect()
}

impl Fixture {
    async fn reconfigure(&self, config: Config) {
        self.manager.reconfigure(config).await.unwrap();
        self.fs.reconfigured();
    }
}

#[tokio::test]
async fn a_narrowed_writers_bytes_are_never_published_nor_served() {
    let (f, dir) = shared_fixture().await;
    let d = f.fs.mkdir(&ROOT_CALLER, ROOT, n("shared"), 0o777).await.unwrap().attr.ino;
    let x = f.write_file(d, "x", b"original\n").await;
    // alice opens while allowed, writes, keeps the descriptor.
    let o = f.fs.open(&ALICE, x, libc::O_RDWR).await.unwrap();
    f.fs.write(o.fh, 0, b"ALICE!!!\n").await.unwrap();
    f.reconfigure(shared_config(dir.path(), true)).await;
    // Her next write is refused at once.
    assert_eq!(f.fs.write(o.fh, 0, b"more").await.unwrap_err().errno(), libc::EACCES);
    // root reads the store's value, not her pending bytes.
    assert_eq!(f.read_file(x).await, b"original\n");
    // root touches the file: his change is his, committed as his.
    let now = SetAttr { mtime: Some(TimeSpec::Now), ..SetAttr::default() };
    f.fs.setattr(&ROOT_CALLER, x, now).await.unwrap();
    // Her fsync and close report the refusal.
    assert_eq!(f.fs.fsync(o.fh).await.unwrap_err().errno(), libc::EACCES);
    let _ = f.fs.release(o.fh).await;
    f.fs.store().flush().await.unwrap();
    assert_eq!(f.stored("shared/x").await.unwrap(), b"original\n");
    // Her commit was refused as hers; root's change went in as his.
    // (Her write(2) and the commit of her earlier bytes are both refused;
    // root's changes are committed together, in one batch, as his.)
    let commits = writers_of(&f, "shared/x");
    assert_eq!(commits, ["alice Denied", "alice Denied", "root Allowed"]);
}

#[tokio::test]
async fn an_allowed_writers_change_survives_anothers_refusal() {
    let (f, dir) = shared_fixture().await;
    let d = f.fs.mkdir(&ROOT_CALLER, ROOT, n("shared"), 0o777).await.unwrap().attr.ino;
    let y = f.write_file(d, "y", b"line 1\n").await;
    let o = f.fs.open(&ALICE, y, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
    f.fs.write(o.fh, 0, b"hers\n").await.unwrap();
    f.reconfigure(shared_config(dir.path(), true)).await;
    // root appends while her refused bytes wait: his line is kept, hers are not.
    let r = f.fs.open(&ROOT_CALLER, y, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
    f.fs.write(r.fh, 0, b"root's\n").await.unwrap();
    f.fs.release(r.fh).await.unwrap();
    f.fs.store().flush().await.unwrap();
    assert_eq!(f.stored("shared/y").await.unwrap(), b"line 1\nroot's\n");
    let _ = f.fs.release(o.fh).await;
    assert_eq!(f.stored("shared/y").await.unwrap(), b"line 1\nroot's\n");
}

#[tokio::test]
async fn each_writer_is_committed_as_itself() {
    let (f, _dir) = shared_fixture().await;
    let d = f.fs.mkdir(&ROOT_CALLER, ROOT, n("shared"), 0o777).await.unwrap().attr.ino;
    let z = f.write_file(d, "z", b"").await;
    let a = f.fs.open(&ALICE, z, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
    let r = f.fs.open(&ROOT_CALLER, z, libc::O_WRONLY | libc::O_APPEND).await.unwrap();
    f.fs.write(a.fh, 0, b"a1\n").await.unwrap();
    f.fs.write(r.fh, 0, b"r1\n").await.unwrap();
    f.fs.write(a.fh, 0, b"a2\n").await.unwrap();
    f.fs.release(a.fh).await.unwrap();
    f.fs.release(r.fh).await.unwrap();
    f.fs.store().flush().await.unwrap();
    assert_eq!(f.stored("shared/z").await.unwrap(), b"a1\nr1\na2\n");
    // Each commit as the principal who wrote those bytes.
    // (root created it; alice's first line is committed when root writes,
    // root's when alice writes again, alice's second when she closes.)
    let commits = writers_of(&f, "shared/z");
    assert_eq!(commits, ["root Allowed", "alice Allowed", "root Allowed", "alice Allowed"]);
}

#[tokio::test]
async fn a_file_being_executed_is_not_opened_to_change() {
    let f = fixture().await;
    let ino = f.write_file(ROOT, "prog", b"#!/bin/sh\n").await;
    let exec = f.fs.open(&ROOT_CALLER, ino, libc::O_RDONLY | FMODE_EXEC).await.unwrap();
    for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
        let e = f.fs.open(&ROOT_CALLER, ino, flags).await.unwrap_err();
        assert_eq!(e.errno(), libc::ETXTBSY, "flags {flags:#x}");
    }
    let read = f.fs.open(&ROOT_CALLER, ino, libc::O_RDONLY).await.unwrap();
    f.fs.release(read.fh).await.unwrap();
    f.fs.release(exec.fh).await.unwrap();
    let w = f.fs.open(&ROOT_CALLER, ino, libc::O_WRONLY).await.unwrap();
    f.fs.release(w.fh).await.unwrap();
}
