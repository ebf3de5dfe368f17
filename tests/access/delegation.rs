//! Delegation with provenance: a delegate never lifts an administrator's
//! denial, never binds an administrator, never grants what it does not
//! hold; the administrator of `*` can always recover. The property test
//! drives random sequences of delegated operations.

use bytes::Bytes;
use proptest::prelude::*;
use tierfs_core::access::{AccessLevel, AccessPolicy, AccessRule, Principal, StorageOperationType as Op};
use tierfs_core::audit::{AuditQuery, AuditResult};
use tierfs_core::{Config, ErrorKind, Key, Storage, StorageManager};

use super::{as_user, manager};

const CONFIG: &str = r#"
[backends.main]
type = "memory"

[access]
default = "none"

[[access.rules]]
principal = "root"
resource = "*"
level = "full"

[[access.rules]]
principal = "lead"
resource = "team/"
level = "full"

[audit]
path = "{dir}/audit.log"
"#;

fn rule(p: &str, r: &str, o: &str, l: &str) -> AccessRule {
    AccessRule::parse(p, r, o, l).unwrap()
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn denied(result: tierfs_core::Result<()>) {
    let e = result.expect_err("should be refused");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

#[tokio::test]
async fn a_delegate_cannot_lift_an_administrators_deny() {
    let (m, _dir) = manager(CONFIG).await;
    let root = as_user(&m, "root", &[]);
    let lead = as_user(&m, "lead", &[]);
    root.put(&key("team/secret.txt"), Bytes::from("secret"), Default::default()).await.unwrap();
    root.add_access_rule(rule("lead", "team/secret.txt", "read", "none")).await.unwrap();
    assert_eq!(lead.get(&key("team/secret.txt")).await.unwrap_err().kind(), ErrorKind::PermissionDenied);

    // Removing root's rule, or overruling it with a more specific grant, is refused.
    let e = lead.remove_access_rule(&rule("lead", "team/secret.txt", "read", "none")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("added by `root`"), "{e}");
    denied(lead.add_access_rule(rule("lead", "team/secret.txt", "*", "full")).await);
    denied(lead.add_access_rule(rule("role:staff", "team/secret.txt", "read", "read")).await);
    assert_eq!(lead.get(&key("team/secret.txt")).await.unwrap_err().kind(), ErrorKind::PermissionDenied);

    // A deny of someone else by root cannot be overruled either.
    root.add_access_rule(rule("bob", "team/", "*", "none")).await.unwrap();
    let e = lead.add_access_rule(rule("bob", "team/doc", "*", "read")).await.unwrap_err();
    assert!(e.to_string().contains("lift the denial"), "{e}");
    // Granting on team/ reaches team/secret.txt, which lead may not read.
    let e = lead.add_access_rule(rule("carol", "team/", "*", "read")).await.unwrap_err();
    assert!(e.to_string().contains("team/secret.txt"), "{e}");

    // Every refusal is audited as lead's.
    let refusals = m
        .session("root")
        .audit_log(&AuditQuery {
            principal: Some("lead".into()),
            result: Some(AuditResult::Denied),
            ..Default::default()
        })
        .unwrap();
    let admin = refusals.iter().filter(|r| r.operation.starts_with("admin:")).count();
    assert_eq!(admin, 5, "{refusals:#?}");
}

#[tokio::test]
async fn a_delegate_cannot_lock_out_an_administrator() {
    let (m, _dir) = manager(CONFIG).await;
    let root = as_user(&m, "root", &[]);
    let lead = as_user(&m, "lead", &[]);
    root.put(&key("team/a"), Bytes::from("a"), Default::default()).await.unwrap();
    let e = lead.add_access_rule(rule("root", "team/", "*", "none")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("`root`"), "{e}");
    // Everyone includes root.
    denied(lead.add_access_rule(rule("*", "team/", "*", "none")).await);
    denied(lead.add_access_rule(rule("*", "team/pub/", "*", "read")).await);
    // A peer administrator of team/ is bound neither.
    root.add_access_rule(rule("lead2", "team/", "*", "full")).await.unwrap();
    denied(lead.add_access_rule(rule("lead2", "team/x", "*", "none")).await);
    assert_eq!(root.get(&key("team/a")).await.unwrap(), Bytes::from("a"));
}

#[tokio::test]
async fn the_administrator_of_everything_always_recovers() {
    // root has shut itself out of team/ by a rule of the configuration.
    let text = CONFIG.replace(
        "[audit]",
        "[[access.rules]]\nprincipal = \"root\"\nresource = \"team/\"\nlevel = \"none\"\n\n[audit]",
    );
    let (m, _dir) = manager(&text).await;
    let root = as_user(&m, "root", &[]);
    assert_eq!(root.get(&key("team/a")).await.unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Its admin on `*` still lets it change every rule.
    root.add_access_rule(rule("bob", "team/doc", "*", "read")).await.unwrap();
    root.remove_access_rule(&rule("root", "team/", "*", "none")).await.unwrap();
    root.put(&key("team/a"), Bytes::from("a"), Default::default()).await.unwrap();
    let mut policy = root.access_policy().unwrap();
    policy.rules.push(rule("root", "team/", "*", "none"));
    root.set_access_policy(policy.clone()).await.unwrap();
    policy.rules.pop();
    root.set_access_policy(policy).await.unwrap();
    assert_eq!(root.get(&key("team/a")).await.unwrap(), Bytes::from("a"));
}

#[tokio::test]
async fn rules_record_who_added_them_across_reloads() {
    let (m, _dir) = manager(CONFIG).await;
    let root = as_user(&m, "root", &[]);
    let lead = as_user(&m, "lead", &[]);
    lead.add_access_rule(rule("bob", "team/doc", "*", "read")).await.unwrap();
    let policy = root.access_policy().unwrap();
    let added = policy.rules.iter().find(|r| r.principal.to_string() == "bob").unwrap();
    let by = added.added_by.as_ref().expect("provenance recorded");
    assert_eq!((by.principal.as_str(), by.authority.to_string().as_str()), ("lead", "team/"));
    // Configuration rules have none: only an administrator of `*` removes them.
    assert!(policy.rules.iter().filter(|r| r.principal.to_string() != "bob").all(|r| r.added_by.is_none()));
    denied(lead.remove_access_rule(&rule("lead", "team/", "*", "full")).await);

    // A reconfiguration through the admin API carries the provenance on.
    root.add_backend(
        "extra",
        tierfs_core::config::BackendConfig { kind: "memory".into(), settings: Default::default() },
    )
    .await
    .unwrap();
    let carried = root.access_policy().unwrap();
    let added = carried.rules.iter().find(|r| r.principal.to_string() == "bob").unwrap();
    assert_eq!(added.added_by.as_ref().unwrap().principal, "lead");
    lead.remove_access_rule(&rule("bob", "team/doc", "*", "read")).await.unwrap();
}

#[tokio::test]
async fn explain_is_for_ones_own_rights_or_an_administrators() {
    let text = CONFIG.replace(
        "[backends.main]\ntype = \"memory\"",
        "[backends.main]\ntype = \"memory\"\n\n[policy]\ntype = \"prefer_cache\"\nprimary = \"main\"",
    );
    let (m, _dir) = manager(&text).await;
    let root = as_user(&m, "root", &[]);
    let bob = as_user(&m, "bob", &[]);
    root.put(&key("team/secret"), Bytes::from("s"), Default::default()).await.unwrap();
    root.get(&key("team/secret")).await.unwrap();
    // bob may explain himself, but learns nothing of the cache for a key he may not read.
    let own = bob.explain(bob.principal(), Op::Read, "team/secret").unwrap();
    assert!(!own.allowed);
    assert_eq!(own.cache, None);
    assert!(own.to_string().contains("cache: not shown"), "{own}");
    let e = bob.explain(&Principal::new("root"), Op::Read, "team/secret").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    // The administrator of team/ may explain bob there; root sees the cache.
    assert!(
        !as_user(&m, "lead", &[]).explain(&Principal::new("bob"), Op::Read, "team/secret").unwrap().allowed
    );
    let e = root.explain(&Principal::new("root"), Op::Read, "team/secret").unwrap();
    assert_eq!(e.cache, Some(tierfs_core::manager::CacheVerdict::Hit));
    // Every explanation is audited.
    let records =
        root.audit_log(&AuditQuery { key_prefix: Some("team/secret".into()), ..Default::default() }).unwrap();
    let explained: Vec<(&str, AuditResult)> = records
        .iter()
        .filter(|r| r.operation == "explain")
        .map(|r| (r.principal.as_str(), r.result))
        .collect();
    assert_eq!(
        explained,
        [
            ("bob", AuditResult::Allowed),
            ("bob", AuditResult::Denied),
            ("lead", AuditResult::Allowed),
            ("root", AuditResult::Allowed)
        ]
    );
}

// ---- the property ---------------------------------------------------------

const PRINCIPALS: &[&str] = &["root", "lead", "bob", "carol", "role:staff", "role:ops", "*"];
const RESOURCES: &[&str] =
    &["team/", "team/doc", "team/secret.txt", "team/sub/", "team/sub/x", "other/", "other/y", "*"];
const OPS: &[&str] = &["*", "read", "write", "delete", "admin"];
const LEVELS: &[&str] = &["none", "read", "write", "admin", "full"];
const TARGETS: &[&str] = &["team/doc", "team/secret.txt", "team/sub/x", "team/sub/", "team/", "other/y", ""];

/// Who exists, with their roles.
fn universe() -> Vec<Principal> {
    vec![
        Principal::new("root"),
        Principal::new("lead").with_role("staff"),
        Principal::new("bob").with_role("staff"),
        Principal::new("carol").with_role("ops"),
        Principal::new("dave"),
    ]
}

fn any_rule() -> impl Strategy<Value = AccessRule> {
    (0..PRINCIPALS.len(), 0..RESOURCES.len(), 0..OPS.len(), 0..LEVELS.len())
        .prop_map(|(p, r, o, l)| rule(PRINCIPALS[p], RESOURCES[r], OPS[o], LEVELS[l]))
}

/// A rule of the configuration: anything but `*`, which would decide
/// whether root administers everything.
fn configured_rule() -> impl Strategy<Value = AccessRule> {
    any_rule().prop_filter("not on *", |r| r.resource.to_string() != "*")
}

#[derive(Debug, Clone)]
enum Step {
    Add(AccessRule),
    Remove(AccessRule),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![3 => any_rule().prop_map(Step::Add), 2 => any_rule().prop_map(Step::Remove)]
}

/// A right: who, what, where; whether it is allowed, and whether a rule
/// of the configuration (authority over `*`) denies it.
type Right = (Principal, Op, &'static str, bool, bool);

/// Every right of the universe: each operation on keys, listing on prefixes.
fn rights(m: &StorageManager) -> Vec<Right> {
    let mut out = Vec::new();
    for p in universe() {
        for target in TARGETS {
            let ops: &[Op] = if target.is_empty() || target.ends_with('/') { &[Op::List] } else { &Op::ALL };
            for op in ops {
                let e = m.explain(&p, *op, target).unwrap();
                let by_configuration = !e.allowed
                    && e.rule.as_ref().is_some_and(|r| r.level == AccessLevel::None && r.added_by.is_none());
                out.push((p.clone(), *op, *target, e.allowed, by_configuration));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_delegated_operations_escalates(
        extra in prop::collection::vec(configured_rule(), 0..6),
        steps in prop::collection::vec(step(), 1..12),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut rules = vec![rule("root", "*", "*", "full"), rule("lead", "team/", "*", "full")];
            rules.extend(extra);
            let text = "[backends.main]\ntype = \"memory\"\n[access]\ndefault = \"none\"\n\
                        [[access.rules]]\nprincipal = \"root\"\nresource = \"*\"\nlevel = \"full\"\n";
            let config = Config::parse(text, None).unwrap();
            let m = StorageManager::open(config).await.unwrap();
            let root = m.session("root");
            root.set_access_policy(AccessPolicy { rules, default: AccessLevel::None }).await.unwrap();
            let before = rights(&m);
            let lead = m.session(Principal::new("lead").with_role("staff"));
            for step in &steps {
                let _ = match step {
                    Step::Add(r) => lead.add_access_rule(r.clone()).await,
                    Step::Remove(r) => lead.remove_access_rule(r).await,
                };
            }
            let after = rights(&m);
            for ((p, op, target, was, denied_above), (_, _, _, now, _)) in before.iter().zip(&after) {
                if *now && !*was {
                    // Nobody gains a right the delegate did not hold ...
                    let lead_held = before.iter().any(|(q, o, t, a, _)| q.id() == "lead" && o == op && t == target && *a);
                    prop_assert!(lead_held, "{} gained {} on `{}`, which lead does not hold, after {:#?}", p.id(), op, target, steps);
                    // ... nor one a rule from above denied.
                    prop_assert!(!denied_above, "{} gained {} on `{}` over a denial from above, after {:#?}", p.id(), op, target, steps);
                }
            }
            // The administrator of everything keeps its rights, and can undo every step.
            let policy = root.access_policy().unwrap();
            for r in policy.rules.iter().filter(|r| r.added_by.as_ref().is_some_and(|p| p.principal == "lead")) {
                root.remove_access_rule(r).await.unwrap();
            }
            let undone = rights(&m);
            for ((p, op, target, was, _), (_, _, _, now, _)) in before.iter().zip(&undone) {
                // lead may have removed rules it added itself only: none at first.
                prop_assert_eq!(was, now, "{} {} `{}` differs after root undid lead's rules", p.id(), op, target);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn an_administrator_through_a_role_is_not_bound_either() {
    let text = CONFIG.replace("principal = \"root\"", "principal = \"role:admins\"");
    let (m, _dir) = manager(&text).await;
    // root holds admin on `*` through its role; the manager knows root's
    // roles from its sessions.
    let root = as_user(&m, "root", &["admins"]);
    let lead = as_user(&m, "lead", &[]);
    let e = lead.add_access_rule(rule("root", "team/", "*", "none")).await.unwrap_err();
    assert!(e.to_string().contains("`root`"), "{e}");
    denied(lead.add_access_rule(rule("role:admins", "team/", "*", "none")).await);
    lead.add_access_rule(rule("bob", "team/doc", "*", "read")).await.unwrap();
    root.remove_access_rule(&rule("bob", "team/doc", "*", "read")).await.unwrap();
}

#[tokio::test]
async fn grants_reach_no_further_than_the_delegates_rights() {
    // lead administers everything routed to @main, but is denied secret/;
    // team/vault/ routes to another backend, where lead holds nothing.
    let text = r#"
[backends.main]
type = "memory"
[backends.vault]
type = "memory"
[[routes]]
prefix = "team/vault/"
backend = "vault"
[access]
default = "none"
[[access.rules]]
principal = "root"
resource = "*"
level = "full"
[[access.rules]]
principal = "lead"
resource = "@main"
level = "full"
[[access.rules]]
principal = "lead"
resource = "secret/"
level = "none"
"#;
    let (m, _dir) = manager(text).await;
    let lead = as_user(&m, "lead", &[]);
    // A grant on the backend would reach secret/, which lead may not read.
    let e = lead.add_access_rule(rule("bob", "@main", "*", "full")).await.unwrap_err();
    assert!(e.to_string().contains("secret/"), "{e}");
    // A grant on team/ would reach the vault route.
    let e = lead.add_access_rule(rule("bob", "team/", "*", "read")).await.unwrap_err();
    assert!(e.to_string().contains("team/vault/"), "{e}");
}

#[tokio::test]
async fn a_role_an_administrator_holds_is_not_bound() {
    let text = CONFIG.replace(
        "[audit]",
        "[[access.rules]]\nprincipal = \"alice\"\nresource = \"team/\"\nlevel = \"full\"\n\n[audit]",
    );
    let (m, _dir) = manager(&text).await;
    // alice, a peer administrator of team/, is known to be in group users.
    let _alice = as_user(&m, "alice", &["group:users"]);
    let lead = as_user(&m, "lead", &[]);
    let e = lead.add_access_rule(rule("role:group:users", "team/", "*", "none")).await.unwrap_err();
    assert!(e.to_string().contains("`alice`, a member of role `group:users`"), "{e}");
}

#[tokio::test]
async fn removing_a_rule_removes_only_the_copy_one_may_remove() {
    let (m, _dir) = manager(CONFIG).await;
    let root = as_user(&m, "root", &[]);
    let lead = as_user(&m, "lead", &[]);
    let doc = rule("bob", "team/doc", "*", "read");
    lead.add_access_rule(doc.clone()).await.unwrap();
    // root sets the same rule too: a copy with root's authority.
    let mut policy = root.access_policy().unwrap();
    policy.rules.push(doc.clone());
    root.set_access_policy(policy).await.unwrap();
    lead.remove_access_rule(&doc).await.unwrap();
    let left: Vec<_> = root.access_policy().unwrap().rules.into_iter().filter(|r| *r == doc).collect();
    assert_eq!(left.len(), 1);
    assert!(left[0].added_by.is_none(), "root's copy stays");
    denied(lead.remove_access_rule(&doc).await);
}

#[tokio::test]
async fn a_listing_explained_tells_nothing_of_the_cache() {
    let (m, _dir) = manager(CONFIG).await;
    let bob = as_user(&m, "bob", &[]);
    let e = bob.explain(bob.principal(), Op::List, "team/secret.txt").unwrap();
    assert_eq!(e.cache, None);
}
