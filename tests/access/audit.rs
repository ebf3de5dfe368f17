//! The audit trail: one record per operation, a chain that shows tampering,
//! and operations refused when the log cannot be written.

use bytes::Bytes;
use tierfs_core::audit::{verify, AuditQuery, AuditResult};
use tierfs_core::{ErrorKind, Key, ListOptions, Storage};

use super::{as_user, manager};

const CONFIG: &str = r#"
[backends.main]
type = "memory"
[access]
default = "none"
[[access.rules]]
principal = "alice"
resource = "mine/"
level = "full"
[[access.rules]]
principal = "root"
resource = "*"
level = "full"
[audit]
path = "{dir}/audit.log"
"#;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn every_operation_is_recorded_once_without_values() {
    let (m, dir) = manager(CONFIG).await;
    let alice = as_user(&m, "alice", &[]);
    let secret_value = "VALUE-NEVER-IN-THE-LOG";
    let mut expected = Vec::new();
    alice.put(&key("mine/a"), Bytes::from(secret_value), Default::default()).await.unwrap();
    expected.push(("write", AuditResult::Allowed));
    alice.get(&key("mine/a")).await.unwrap();
    expected.push(("read", AuditResult::Allowed));
    alice.stat(&key("mine/a")).await.unwrap();
    expected.push(("stat", AuditResult::Allowed));
    alice.list(&ListOptions::children("mine/")).await.unwrap();
    expected.push(("list", AuditResult::Allowed));
    assert!(alice.get(&key("theirs/b")).await.is_err());
    expected.push(("read", AuditResult::Denied));
    assert!(alice.put(&key("theirs/b"), Bytes::from(secret_value), Default::default()).await.is_err());
    expected.push(("write", AuditResult::Denied));
    alice.rename(&key("mine/a"), &key("mine/b")).await.unwrap();
    expected.push(("rename", AuditResult::Allowed));
    alice.delete(&key("mine/b")).await.unwrap();
    expected.push(("delete", AuditResult::Allowed));

    let records = m
        .session("root")
        .audit_log(&AuditQuery { principal: Some("alice".into()), ..Default::default() })
        .unwrap();
    let got: Vec<(&str, AuditResult)> = records.iter().map(|r| (r.operation.as_str(), r.result)).collect();
    assert_eq!(got, expected);
    let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(!text.contains(secret_value), "a value reached the audit log");
    assert!(verify(&dir.path().join("audit.log")).unwrap().is_intact());
}

fn rewrite(path: &std::path::Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn edits_removals_and_reorderings_are_detected() {
    let (m, dir) = manager(CONFIG).await;
    let alice = as_user(&m, "alice", &[]);
    for i in 0..10 {
        alice.put(&key(&format!("mine/{i}")), Bytes::from_static(b"v"), Default::default()).await.unwrap();
    }
    drop(alice);
    drop(m);
    let log = dir.path().join("audit.log");
    let pristine = std::fs::read_to_string(&log).unwrap();
    assert_eq!(verify(&log).unwrap().records, 10);

    type Tamper = Box<dyn FnOnce(&mut Vec<String>)>;
    let tampered: [(&str, Tamper, usize); 4] = [
        ("edit", Box::new(|l: &mut Vec<String>| l[4] = l[4].replace("alice", "mallory")), 5),
        ("delete", Box::new(|l: &mut Vec<String>| drop(l.remove(6))), 7),
        ("reorder", Box::new(|l: &mut Vec<String>| l.swap(2, 3)), 3),
        (
            "truncate-and-append-forged",
            Box::new(|l: &mut Vec<String>| l[9] = l[9].replace("\"allowed\"", "\"denied\"")),
            10,
        ),
    ];
    for (name, change, line) in tampered {
        std::fs::write(&log, &pristine).unwrap();
        rewrite(&log, change);
        let report = verify(&log).unwrap();
        let brk = report.first_break.unwrap_or_else(|| panic!("{name} not detected"));
        assert_eq!(brk.line, line, "{name}: {}", brk.reason);
    }
}

#[tokio::test]
async fn the_chain_continues_across_rotation_and_reopen() {
    let text = CONFIG.replace("[audit]\n", "[audit]\nmax_file_mib = 1\n");
    let (m, dir) = manager(&text).await;
    let alice = as_user(&m, "alice", &[]);
    let long = "mine/".to_owned() + &"k".repeat(200);
    for i in 0..4000 {
        alice.stat(&key(&format!("{long}{i}"))).await.unwrap_err();
    }
    drop(alice);
    drop(m);
    let log = dir.path().join("audit.log");
    assert!(dir.path().join("audit.log.1").exists(), "no rotation happened");
    let report = verify(&log).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 4000);
    // Reopening continues the same chain.
    let config =
        tierfs_core::Config::parse(&text.replace("{dir}", dir.path().to_str().unwrap()), None).unwrap();
    let m = tierfs_core::StorageManager::open(config).await.unwrap();
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let report = verify(&log).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 4001);
}

#[tokio::test]
async fn a_full_disk_fails_operations_closed() {
    // Every write to /dev/full fails with ENOSPC, like a full disk.
    let text = CONFIG.replace("path = \"{dir}/audit.log\"", "path = \"/dev/full\"");
    let (m, _dir) = manager(&text).await;
    let root = as_user(&m, "root", &[]);
    let e = root.put(&key("mine/a"), Bytes::from_static(b"v"), Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("audit log"), "{e}");
    assert_eq!(root.get(&key("mine/a")).await.unwrap_err().kind(), ErrorKind::Unavailable);

    // Configured to fail open, the same operations go ahead.
    let open = text.replace("[audit]\n", "[audit]\non_failure = \"open\"\n");
    let (m, _dir) = manager(&open).await;
    let root = as_user(&m, "root", &[]);
    root.put(&key("mine/a"), Bytes::from_static(b"v"), Default::default()).await.unwrap();
    assert_eq!(root.get(&key("mine/a")).await.unwrap(), Bytes::from_static(b"v"));
}

#[tokio::test]
async fn a_read_only_audit_file_fails_operations_closed() {
    // /proc/version opens for writing as root, but every write fails.
    let text = CONFIG.replace("path = \"{dir}/audit.log\"", "path = \"/proc/version\"");
    let (m, _dir) = manager(&text).await;
    let root = as_user(&m, "root", &[]);
    let e = root.put(&key("mine/a"), Bytes::from_static(b"v"), Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("audit log /proc/version cannot be written"), "{e}");
    // Nothing reached the backend.
    let backend = m.backend("main").unwrap();
    assert_eq!(backend.get(&key("mine/a")).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn an_audit_directory_that_cannot_be_created_refuses_to_start() {
    let text = CONFIG.replace("path = \"{dir}/audit.log\"", "path = \"/proc/version/audit.log\"");
    let dir = tempfile::tempdir().unwrap();
    let config =
        tierfs_core::Config::parse(&text.replace("{dir}", dir.path().to_str().unwrap()), None).unwrap();
    let e =
        tierfs_core::StorageManager::open(config).await.expect_err("opened with an impossible audit path");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("audit.path"), "{e}");
}
