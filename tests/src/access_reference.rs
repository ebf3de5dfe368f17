//! A reference access evaluator written straight from the design contract,
//! as plainly as possible: no index, a scan over every rule. The property
//! tests compare the real, indexed evaluator with it.

use tierfs_core::access::{
    AccessPolicy, AccessRule, Principal, PrincipalPattern, Resource, StorageOperationType,
};

/// What a request is about, as in `tierfs_core::access::Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    /// A key routed to these backends.
    Key(String, Vec<String>),
    /// A directory prefix (ending in `/`) routed to these backends.
    Prefix(String, Vec<String>),
    /// A backend.
    Backend(String),
    /// Everything.
    All,
}

fn principal_matches(rule: &AccessRule, p: &Principal) -> bool {
    match &rule.principal {
        PrincipalPattern::Any => true,
        PrincipalPattern::User(u) => u == p.id(),
        PrincipalPattern::Role(r) => p.has_role(r),
    }
}

fn resource_matches(resource: &Resource, target: &RefTarget) -> bool {
    match (resource, target) {
        (Resource::All, _) => true,
        (Resource::Key(k), RefTarget::Key(key, _)) => k == key,
        (Resource::Prefix(p), RefTarget::Key(key, _)) => {
            key.starts_with(p.as_str()) || format!("{key}/") == *p
        }
        (Resource::Prefix(p), RefTarget::Prefix(prefix, _)) => prefix.starts_with(p.as_str()),
        (Resource::Backend(b), RefTarget::Key(_, backends) | RefTarget::Prefix(_, backends)) => {
            backends.contains(b)
        }
        (Resource::Backend(b), RefTarget::Backend(name)) => b == name,
        _ => false,
    }
}

/// Whether `principal` may do `op` on `target` under `policy`.
pub fn reference_allows(
    policy: &AccessPolicy,
    principal: &Principal,
    op: StorageOperationType,
    target: &RefTarget,
) -> bool {
    // 1. Keep the rules whose principal, operation and resource match.
    let kept: Vec<&AccessRule> = policy
        .rules
        .iter()
        .filter(|r| principal_matches(r, principal))
        .filter(|r| r.operation.is_none() || r.operation == Some(op))
        .filter(|r| resource_matches(&r.resource, target))
        .collect();
    // 2. No match: the default.
    let Some(best) = kept.iter().map(|r| r.resource.specificity()).max() else {
        return policy.default.covers(op);
    };
    // 3. The most specific resource wins.
    let top: Vec<&&AccessRule> = kept.iter().filter(|r| r.resource.specificity() == best).collect();
    // 4. At equal specificity an explicit None beats any grant.
    if top.iter().any(|r| r.level == tierfs_core::access::AccessLevel::None) {
        return false;
    }
    top.iter().any(|r| r.level.covers(op))
}
