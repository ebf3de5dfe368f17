//! Attempts to get around the rules: each fails, changes nothing, and
//! leaves an audit record.

use bytes::Bytes;
use futures::TryStreamExt;
use tierfs_core::access::AccessRule;
use tierfs_core::audit::{AuditQuery, AuditResult};
use tierfs_core::{BatchOp, ErrorKind, Key, ListOptions, Storage, StorageExt};

use super::{as_user, manager};

const CONFIG: &str = r#"
[backends.main]
type = "memory"

[access]
default = "none"

[[access.rules]]
principal = "alice"
resource = "allowed/"
level = "full"

[[access.rules]]
principal = "alice"
resource = "allowed/secret"
level = "none"

[[access.rules]]
principal = "root"
resource = "*"
level = "full"

[[access.rules]]
principal = "dele"
resource = "team/"
level = "admin"

[[access.rules]]
principal = "lead"
resource = "team/"
level = "full"

[audit]
path = "{dir}/audit.log"
"#;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

async fn setup() -> (tierfs_core::StorageManager, tempfile::TempDir) {
    let (m, dir) = manager(CONFIG).await;
    let root = as_user(&m, "root", &[]);
    for k in ["allowed/x", "allowed/secret", "other/y", "team/doc"] {
        root.put(&key(k), Bytes::from(k.to_owned()), Default::default()).await.unwrap();
    }
    (m, dir)
}

fn denied_count(m: &tierfs_core::StorageManager, principal: &str) -> usize {
    let root = m.session("root");
    let q = AuditQuery {
        principal: Some(principal.into()),
        result: Some(AuditResult::Denied),
        ..Default::default()
    };
    root.audit_log(&q).unwrap().len()
}

#[tokio::test]
async fn a_batch_with_one_denied_op_applies_nothing() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    let ops = vec![
        BatchOp::put(key("allowed/new"), "n"),
        BatchOp::delete(key("allowed/x")),
        BatchOp::put(key("other/y"), "clobbered"),
    ];
    let e = alice.batch(ops).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("other/y"), "{e}");
    let root = m.session("root");
    assert_eq!(root.get(&key("allowed/x")).await.unwrap(), Bytes::from("allowed/x"));
    assert_eq!(root.get(&key("other/y")).await.unwrap(), Bytes::from("other/y"));
    assert_eq!(root.get(&key("allowed/new")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(denied_count(&m, "alice"), 1);
}

#[tokio::test]
async fn a_listing_hides_keys_the_caller_may_not_read() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    let names: Vec<String> = alice
        .list_stream(ListOptions::recursive("allowed/"))
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["allowed/x"]);
    let root: Vec<String> = alice
        .list_stream(ListOptions::children(""))
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(root, ["allowed/"], "other/ and team/ must not show");
    let e = alice.list(&ListOptions::children("other/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn renames_out_of_or_into_forbidden_places_are_refused() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    for (from, to) in [("allowed/x", "other/x"), ("allowed/x", "allowed/secret"), ("other/y", "allowed/y")] {
        let e = alice.rename(&key(from), &key(to)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{from} -> {to}: {e}");
    }
    let root = m.session("root");
    assert_eq!(root.get(&key("allowed/x")).await.unwrap(), Bytes::from("allowed/x"));
    assert_eq!(root.get(&key("allowed/secret")).await.unwrap(), Bytes::from("allowed/secret"));
    assert_eq!(root.get(&key("other/x")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(denied_count(&m, "alice"), 3);
    // Inside the allowed prefix it works.
    alice.rename(&key("allowed/x"), &key("allowed/z")).await.unwrap();
}

#[tokio::test]
async fn look_alike_keys_gain_nothing() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    assert_eq!(Key::new("allowed/../other/y").unwrap_err().kind(), ErrorKind::InvalidKey);
    assert_eq!(Key::new("allowed//secret").unwrap_err().kind(), ErrorKind::InvalidKey);
    // Cyrillic "а" and a full-width solidus are other keys, outside `allowed/`.
    for k in ["\u{430}llowed/x", "allowed\u{ff0f}x", "Allowed/x"] {
        let e = alice.put(&key(k), Bytes::from_static(b"x"), Default::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{k}");
    }
    assert_eq!(denied_count(&m, "alice"), 3);
}

#[tokio::test]
async fn delegation_cannot_go_beyond_own_rights() {
    let (m, _dir) = setup().await;
    let dele = as_user(&m, "dele", &[]);
    let lead = as_user(&m, "lead", &[]);
    let rule = |p, r, l| AccessRule::parse(p, r, "*", l).unwrap();
    // Admin without read or write cannot hand out read or write.
    let e = dele.add_access_rule(rule("bob", "team/", "read")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("delegation"), "{e}");
    // Outside its resource, or wider than it.
    for r in [rule("bob", "other/", "read"), rule("bob", "*", "read"), rule("bob", "@main", "read")] {
        let e = lead.add_access_rule(r.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{r}: {e}");
    }
    // Within its rights it works, and the grant takes effect.
    lead.add_access_rule(rule("bob", "team/doc", "read")).await.unwrap();
    let bob = as_user(&m, "bob", &[]);
    assert_eq!(bob.get(&key("team/doc")).await.unwrap(), Bytes::from("team/doc"));
    assert_eq!(bob.get(&key("other/y")).await.unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Rules are unchanged by the refused attempts.
    let rules = m.session("root").access_policy().unwrap().rules;
    assert_eq!(rules.len(), 6);
    assert_eq!(denied_count(&m, "dele"), 1);
    assert_eq!(denied_count(&m, "lead"), 3);
}

#[tokio::test]
async fn admin_commands_by_non_admins_are_refused() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    let before = m.config();
    let backend = tierfs_core::config::BackendConfig { kind: "memory".into(), settings: Default::default() };
    let results = [
        alice.add_backend("extra", backend).await.err(),
        alice.remove_backend("main").await.err(),
        alice.set_policy(None, tierfs_core::config::PolicyConfig::always_local("main")).await.err(),
        alice.reload_config(before.clone()).await.err(),
        alice.reload_plugins().await.err(),
        alice.audit_log(&AuditQuery::default()).err(),
        alice.access_policy().err(),
        alice.add_access_rule(AccessRule::parse("alice", "*", "*", "full").unwrap()).await.err(),
    ];
    for (i, e) in results.iter().enumerate() {
        let e = e.as_ref().unwrap_or_else(|| panic!("command {i} was allowed"));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "command {i}: {e}");
    }
    assert_eq!(m.backend_names(), ["main"]);
    assert_eq!(denied_count(&m, "alice"), results.len());
}

/// Names a listing may not show: a directory the caller's group is denied,
/// one reachable only through a write-only grant, one whose only grant
/// inside is overruled.
#[tokio::test]
async fn listings_show_no_name_through_an_overruled_or_write_only_grant() {
    let text = r#"
[backends.main]
type = "memory"
[access]
default = "none"
[[access.rules]]
principal = "root"
resource = "*"
level = "full"
[[access.rules]]
principal = "*"
resource = "public/"
level = "read"
[[access.rules]]
principal = "role:group:outsiders"
resource = "public/"
level = "none"
[[access.rules]]
principal = "*"
resource = ""
operation = "list"
level = "read"
[[access.rules]]
principal = "alice"
resource = "ops/log.txt"
operation = "write"
level = "full"
[[access.rules]]
principal = "eve"
resource = "hidden/report"
level = "read"
[[access.rules]]
principal = "role:group:outsiders"
resource = "hidden/report"
level = "none"
"#;
    let text = text.replace("resource = \"\"\noperation", "resource = \"*\"\noperation");
    let (m, _dir) = super::manager(&text).await;
    let backend = m.backend("main").unwrap();
    for k in ["public/a", "ops/log.txt", "hidden/report", "other/x"] {
        backend.put(&key(k), Bytes::from_static(b"v"), Default::default()).await.unwrap();
    }
    let names = |s: std::sync::Arc<tierfs_core::Session>| async move {
        s.list_stream(ListOptions::children("")).map_ok(|e| e.name().to_owned()).try_collect::<Vec<_>>().await
    };
    assert_eq!(names(as_user(&m, "bob", &[])).await.unwrap(), ["public/"]);
    // eve's group is denied public/, and her read grant in hidden/ is overruled by it too.
    assert_eq!(names(as_user(&m, "eve", &["group:outsiders"])).await.unwrap(), Vec::<String>::new());
    let page =
        as_user(&m, "eve", &["group:outsiders"]).list(&ListOptions::children("hidden/")).await.unwrap();
    assert!(page.entries.is_empty(), "{page:?}");
    // Outside the group, eve's grant shows the way to it.
    assert_eq!(names(as_user(&m, "eve", &[])).await.unwrap(), ["hidden/", "public/"]);
    // alice's write-only grant shows nothing.
    assert_eq!(names(as_user(&m, "alice", &[])).await.unwrap(), ["public/"]);
}

/// A streamed write is re-decided at each chunk and when it publishes: a
/// rule narrowed meanwhile stops it, and nothing is published.
#[tokio::test]
async fn a_streamed_write_stops_when_the_rules_narrow() {
    let (m, _dir) = setup().await;
    let alice = as_user(&m, "alice", &[]);
    let root = as_user(&m, "root", &[]);
    let mut writer = alice.write(&key("allowed/big"), Default::default()).await.unwrap();
    writer.write(Bytes::from_static(b"first chunk")).await.unwrap();
    let narrowed = AccessRule::parse("alice", "allowed/big", "*", "read").unwrap();
    root.add_access_rule(narrowed.clone()).await.unwrap();
    let e = writer.write(Bytes::from_static(b"second")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let e = writer.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(root.get(&key("allowed/big")).await.unwrap_err().kind(), ErrorKind::NotFound);

    // Narrowed after the last chunk: refused when it publishes.
    root.remove_access_rule(&narrowed).await.unwrap();
    let mut writer = alice.write(&key("allowed/big"), Default::default()).await.unwrap();
    writer.write(Bytes::from_static(b"all of it")).await.unwrap();
    root.add_access_rule(narrowed).await.unwrap();
    assert_eq!(writer.finish().await.unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert_eq!(root.get(&key("allowed/big")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(denied_count(&m, "alice") >= 3);
}

/// A policy refused at run time is named as the one given, not as a route
/// of the configuration file.
#[tokio::test]
async fn a_refused_runtime_policy_names_what_was_given() {
    let (m, _dir) = setup().await;
    let root = m.session("root");
    let bad = tierfs_core::config::PolicyConfig::always_local("nowhere");
    let e = root.set_policy(Some("tmp/"), bad.clone()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("the policy given to set_policy for route `tmp/`"), "{text}");
    assert!(text.contains("nowhere") && text.contains("nothing changed"), "{text}");
    let e = root.set_policy(None, bad).await.unwrap_err();
    assert!(e.to_string().contains("the default policy given to set_policy"), "{e}");
    assert_eq!(m.route_of("tmp/x").backends, ["main"]);
}
