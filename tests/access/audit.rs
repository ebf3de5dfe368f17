//! The audit trail: one record per operation, a chain that shows tampering,
//! and operations refused when the log cannot be written.

use bytes::Bytes;
use tierfs_core::audit::{verify, AuditConfig, AuditQuery, AuditResult, Tampering};
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
    assert!(verify(&audit_config(dir.path())).unwrap().is_intact());
}

fn rewrite(path: &std::path::Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The log's settings in `dir` (the configuration above).
fn audit_config(dir: &std::path::Path) -> AuditConfig {
    AuditConfig { path: dir.join("audit.log"), ..Default::default() }
}

/// Recomputes every hash of the log the way a forger who knows the format
/// but not the key would: the same bytes and field order, each line's hash
/// a SHA-256 of its bytes, each `prev` the hash before.
fn recompute_without_key(lines: &mut [String]) {
    use sha2::{Digest, Sha256};
    let mut prev = tierfs_core::audit::GENESIS.to_owned();
    for line in lines.iter_mut() {
        let at = line.rfind(",\"hash\":\"").unwrap();
        let mut body = line[..at].to_owned();
        let p = body.rfind("\"prev\":\"").unwrap() + 8;
        body.replace_range(p..p + 64, &prev);
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        *line = format!("{body},\"hash\":\"{hash}\"}}");
        prev = hash;
    }
}

#[tokio::test]
async fn every_kind_of_tampering_is_named_with_its_line() {
    let (m, dir) = manager(CONFIG).await;
    let alice = as_user(&m, "alice", &[]);
    for i in 0..10 {
        alice.put(&key(&format!("mine/{i}")), Bytes::from_static(b"v"), Default::default()).await.unwrap();
    }
    drop(alice);
    drop(m);
    let config = audit_config(dir.path());
    let log = config.path.clone();
    let pristine = std::fs::read_to_string(&log).unwrap();
    // Line 1 is the genesis record; lines 2 to 11 the ten writes.
    assert_eq!(pristine.lines().count(), 11);
    let report = verify(&config).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 10);
    assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(10)));

    type Tamper = Box<dyn FnOnce(&mut Vec<String>)>;
    let cases: Vec<(&str, Tamper, usize, Tampering)> = vec![
        (
            "edit a value",
            Box::new(|l: &mut Vec<String>| l[4] = l[4].replace("alice", "mallory")),
            5,
            Tampering::Edited,
        ),
        ("delete a record", Box::new(|l: &mut Vec<String>| drop(l.remove(6))), 7, Tampering::Removed),
        ("swap two records", Box::new(|l: &mut Vec<String>| l.swap(2, 3)), 3, Tampering::Reordered),
        (
            "duplicate a record",
            Box::new(|l: &mut Vec<String>| l.insert(5, l[3].clone())),
            6,
            Tampering::Reordered,
        ),
        (
            "flip the last decision",
            Box::new(|l: &mut Vec<String>| l[10] = l[10].replace("\"allowed\"", "\"denied\"")),
            11,
            Tampering::Edited,
        ),
        (
            "drop the last five records",
            Box::new(|l: &mut Vec<String>| l.truncate(l.len() - 5)),
            7,
            Tampering::Truncated,
        ),
        (
            "delete the first line",
            Box::new(|l: &mut Vec<String>| drop(l.remove(0))),
            1,
            Tampering::HeadRemoved,
        ),
        (
            "add a field",
            Box::new(|l: &mut Vec<String>| l[3] = l[3].replacen("{", "{\"note\":\"x\",", 1)),
            4,
            Tampering::Edited,
        ),
        (
            "whitespace inside a record",
            Box::new(|l: &mut Vec<String>| l[3] = l[3].replacen("\",\"", "\", \"", 1)),
            4,
            Tampering::Edited,
        ),
        (
            "whitespace after a record",
            Box::new(|l: &mut Vec<String>| l[3].push(' ')),
            4,
            Tampering::NotARecord,
        ),
        (
            "an empty line",
            Box::new(|l: &mut Vec<String>| l.insert(2, String::new())),
            3,
            Tampering::NotARecord,
        ),
        (
            "remove records and recompute every hash",
            Box::new(|l: &mut Vec<String>| {
                l.drain(3..6);
                recompute_without_key(l);
            }),
            1,
            Tampering::Edited,
        ),
    ];
    for (name, change, line, kind) in cases {
        std::fs::write(&log, &pristine).unwrap();
        rewrite(&log, change);
        let report = verify(&config).unwrap();
        let brk = report.first_break.unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((brk.line, brk.kind), (line, kind), "{name}: {}", brk.reason);
    }

    // A line cut in the middle (a partial write, or `truncate -s`).
    std::fs::write(&log, &pristine[..pristine.len() - 20]).unwrap();
    let brk = verify(&config).unwrap().first_break.expect("a cut line");
    assert_eq!((brk.line, brk.kind), (11, Tampering::Truncated), "{}", brk.reason);

    // The seal removed, or forged without the key.
    std::fs::write(&log, &pristine).unwrap();
    let seal = config.seal_path();
    let sealed = std::fs::read(&seal).unwrap();
    std::fs::remove_file(&seal).unwrap();
    let brk = verify(&config).unwrap().first_break.expect("a missing seal");
    assert_eq!(brk.kind, Tampering::Seal, "{}", brk.reason);
    let forged = String::from_utf8(sealed.clone()).unwrap().replace("\"seq\":10", "\"seq\":11");
    std::fs::write(&seal, forged).unwrap();
    let brk = verify(&config).unwrap().first_break.expect("a forged seal");
    assert_eq!(brk.kind, Tampering::Seal, "{}", brk.reason);
    std::fs::write(&seal, &sealed).unwrap();
    assert!(verify(&config).unwrap().is_intact());

    // Another key does not verify anything.
    let other = dir.path().join("other.key");
    std::fs::write(&other, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let report = verify(&AuditConfig { key_file: Some(other), ..config.clone() }).unwrap();
    assert_eq!(report.first_break.unwrap().kind, Tampering::Edited);
}

#[tokio::test]
async fn records_removed_while_the_log_is_closed_stay_on_record() {
    let (m, dir) = manager(CONFIG).await;
    let alice = as_user(&m, "alice", &[]);
    for i in 0..6 {
        alice.stat(&key(&format!("mine/{i}"))).await.unwrap_err();
    }
    drop(alice);
    drop(m);
    let config = audit_config(dir.path());
    rewrite(&config.path, |l| l.truncate(l.len() - 3));
    // Reopening does not refuse to start: it records the gap, and verify names it.
    let text = CONFIG.replace("{dir}", dir.path().to_str().unwrap());
    let m =
        tierfs_core::StorageManager::open(tierfs_core::Config::parse(&text, None).unwrap()).await.unwrap();
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let brk = verify(&config).unwrap().first_break.expect("the gap");
    assert_eq!((brk.line, brk.kind), (5, Tampering::Truncated), "{}", brk.reason);
    assert!(brk.reason.contains("records 4..=6 are missing"), "{}", brk.reason);
}

#[tokio::test]
async fn the_chain_continues_across_rotation_and_reopen() {
    let text = CONFIG.replace("[audit]\n", "[audit]\nmax_file_mib = 1\nmax_files = 2\n");
    let (m, dir) = manager(&text).await;
    let alice = as_user(&m, "alice", &[]);
    let long = "mine/".to_owned() + &"k".repeat(200);
    for i in 0..4000 {
        alice.stat(&key(&format!("{long}{i}"))).await.unwrap_err();
    }
    drop(alice);
    drop(m);
    let config = audit_config(dir.path());
    assert!(dir.path().join("audit.log.1").exists(), "no rotation happened");
    let report = verify(&config).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 4000);
    // Every newer file begins with a rotation record linking to the file before.
    let head = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(head.lines().next().unwrap().contains("\"operation\":\"audit:rotate\""), "{}", &head[..200]);
    // Reopening continues the same chain.
    let config_text = text.replace("{dir}", dir.path().to_str().unwrap());
    let m = tierfs_core::StorageManager::open(tierfs_core::Config::parse(&config_text, None).unwrap())
        .await
        .unwrap();
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let report = verify(&config).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 4001);

    // Rotating past max_files drops the oldest file: the chain then begins
    // at a rotation record, which the seal names; removing the oldest kept
    // file on top of that shows.
    let m = tierfs_core::StorageManager::open(tierfs_core::Config::parse(&config_text, None).unwrap())
        .await
        .unwrap();
    let alice = as_user(&m, "alice", &[]);
    for i in 0..8000 {
        alice.stat(&key(&format!("{long}{i}"))).await.unwrap_err();
    }
    drop(alice);
    drop(m);
    assert!(!dir.path().join("audit.log.3").exists(), "max_files is 2");
    let report = verify(&config).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert!(report.first_seq.unwrap() > 0, "the oldest file was rotated away");
    std::fs::remove_file(dir.path().join("audit.log.2")).unwrap();
    let brk = verify(&config).unwrap().first_break.expect("a removed file");
    assert_eq!(brk.kind, Tampering::HeadRemoved, "{}", brk.reason);
}

#[tokio::test]
async fn a_full_disk_fails_operations_closed() {
    // Every write to /dev/full fails with ENOSPC, like a full disk.
    let text = CONFIG.replace(
        "path = \"{dir}/audit.log\"",
        "path = \"/dev/full\"\nkey_file = \"{dir}/audit.key\"\nseal_file = \"{dir}/audit.seal\"",
    );
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
    // /proc/version opens for writing as root, but every write fails (no
    // access rules here: the file is world-readable, which rules would refuse).
    let text = "[backends.main]\ntype = \"memory\"\n[audit]\npath = \"/proc/version\"\n\
                key_file = \"{dir}/audit.key\"\nseal_file = \"{dir}/audit.seal\"\n";
    let (m, _dir) = manager(text).await;
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

#[tokio::test]
async fn a_log_whose_files_were_removed_says_so() {
    let (m, dir) = manager(CONFIG).await;
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let config = audit_config(dir.path());
    // Every log file removed while closed; the key and the seal stay.
    std::fs::remove_file(&config.path).unwrap();
    let text = CONFIG.replace("{dir}", dir.path().to_str().unwrap());
    let m =
        tierfs_core::StorageManager::open(tierfs_core::Config::parse(&text, None).unwrap()).await.unwrap();
    as_user(&m, "alice", &[]).stat(&key("mine/y")).await.unwrap_err();
    drop(m);
    let report = verify(&config).unwrap();
    let brk = report.first_break.expect("the missing files");
    assert_eq!((brk.line, brk.kind), (2, Tampering::Truncated), "{}", brk.reason);
    assert!(brk.reason.contains("files were missing"), "{}", brk.reason);
    // What follows the gap record is checked, and sound.
    assert_eq!(report.breaks.len(), 1, "{:?}", report.breaks);
    assert_eq!(report.records, 1);
}

#[tokio::test]
async fn a_record_torn_by_a_crash_is_cut_and_recorded() {
    let (m, dir) = manager(CONFIG).await;
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let config = audit_config(dir.path());
    // A crash while the next record was written leaves half a line.
    let mut torn = std::fs::read(&config.path).unwrap();
    torn.extend_from_slice(b"{\"seq\":3,\"time\":\"2026-");
    std::fs::write(&config.path, torn).unwrap();
    let text = CONFIG.replace("{dir}", dir.path().to_str().unwrap());
    let m =
        tierfs_core::StorageManager::open(tierfs_core::Config::parse(&text, None).unwrap()).await.unwrap();
    as_user(&m, "alice", &[]).stat(&key("mine/y")).await.unwrap_err();
    drop(m);
    let report = verify(&config).unwrap();
    let brk = report.first_break.expect("the cut");
    assert_eq!((brk.line, brk.kind), (3, Tampering::Truncated), "{}", brk.reason);
    assert!(brk.reason.contains("cut short"), "{}", brk.reason);
    assert_eq!((report.breaks.len(), report.records), (1, 2), "{:?}", report.breaks);
}

#[tokio::test]
async fn a_reload_that_changes_audit_settings_keeps_one_chain() {
    let (m, dir) = manager(CONFIG).await;
    let alice = as_user(&m, "alice", &[]);
    alice.stat(&key("mine/a")).await.unwrap_err();
    let text = CONFIG.replace("{dir}", dir.path().to_str().unwrap());
    for flush in ["batch", "record", "batch"] {
        let changed =
            text.replace("[audit]\n", &format!("[audit]\nflush = \"{flush}\"\non_failure = \"open\"\n"));
        m.reconfigure(tierfs_core::Config::parse(&changed, None).unwrap()).await.unwrap();
        for i in 0..50 {
            alice.stat(&key(&format!("mine/{flush}{i}"))).await.unwrap_err();
        }
    }
    drop(alice);
    m.shutdown().await.unwrap();
    drop(m);
    let report = verify(&audit_config(dir.path())).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 151);
}

#[tokio::test]
async fn a_seal_rolled_back_shows() {
    let (m, dir) = manager(CONFIG).await;
    as_user(&m, "alice", &[]).stat(&key("mine/x")).await.unwrap_err();
    drop(m);
    let config = audit_config(dir.path());
    let log = std::fs::read_to_string(&config.path).unwrap();
    let seal = std::fs::read(config.seal_path()).unwrap();
    // The last record removed, and the seal cut to its older slot.
    let kept: Vec<&str> = log.lines().collect();
    std::fs::write(&config.path, kept[..kept.len() - 1].join("\n") + "\n").unwrap();
    std::fs::write(config.seal_path(), &seal[..512]).unwrap();
    let brk = verify(&config).unwrap().first_break.expect("the rollback");
    assert_eq!(brk.kind, Tampering::Seal, "{}", brk.reason);
}
