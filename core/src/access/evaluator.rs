//! The indexed rule evaluator.
//!
//! Rules are indexed by principal pattern (user, role, everyone), then by
//! resource (exact key, prefix, backend, everything). A check visits the
//! candidate resources of the target from most to least specific (the
//! key, each of its directory prefixes from the longest, its backends,
//! `*`), looking each up in the buckets of the user, its roles and
//! everyone. The cost depends on the depth of the key and the number of
//! roles held, not on the number of rules.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::types::{AccessLevel, AccessPolicy, AccessRule, PrincipalPattern, Resource, StorageOperationType};
use super::Principal;

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A key, routed to these backends.
    Key {
        /// The key.
        key: &'a str,
        /// The backends the key routes to.
        backends: &'a [String],
    },
    /// A directory prefix ending in `/` (or `""` for the root), routed to these backends.
    Prefix {
        /// The prefix.
        prefix: &'a str,
        /// The backends its keys route to.
        backends: &'a [String],
    },
    /// A backend as a whole (`@name`).
    Backend(&'a str),
    /// Everything (`*`).
    All,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the operation may proceed.
    pub allowed: bool,
    /// What the deciding rules grant together (the default when none matched).
    pub level: AccessLevel,
    /// The deciding rule: the denying one, or the first granting one at the
    /// winning specificity; `None` when the default decided.
    pub rule: Option<Arc<AccessRule>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    operation: Option<StorageOperationType>,
    level: AccessLevel,
    rule: usize,
}

#[derive(Debug, Default)]
struct Bucket {
    keys: HashMap<String, Vec<Entry>>,
    /// Directory rules by prefix without its trailing `/` (`a/b/` is
    /// stored as `a/b`), so a check looks slices of the key up without
    /// allocating.
    prefixes: HashMap<String, Vec<Entry>>,
    backends: HashMap<String, Vec<Entry>>,
    all: Vec<Entry>,
    /// Keys and prefixes with a grant covering Read, for listing directories.
    readable: BTreeSet<String>,
}

impl Bucket {
    fn insert(&mut self, resource: &Resource, entry: Entry) {
        match resource {
            Resource::Key(k) => self.keys.entry(k.clone()).or_default().push(entry),
            Resource::Prefix(p) => {
                self.prefixes.entry(p.trim_end_matches('/').to_owned()).or_default().push(entry)
            }
            Resource::Backend(b) => self.backends.entry(b.clone()).or_default().push(entry),
            Resource::All => self.all.push(entry),
        }
        if let Resource::Key(r) | Resource::Prefix(r) = resource {
            let reads = entry.operation.is_none_or(|o| o == StorageOperationType::Read);
            if reads && entry.level.covers(StorageOperationType::Read) {
                self.readable.insert(r.clone());
            }
        }
    }
}

/// The rules matched at one specificity.
#[derive(Default)]
struct Found {
    first: Option<Entry>,
    deny: Option<Entry>,
    grant: Option<Entry>,
}

impl Found {
    fn add(&mut self, e: Entry, op: StorageOperationType) {
        self.first.get_or_insert(e);
        if e.level == AccessLevel::None {
            self.deny.get_or_insert(e);
        } else if e.level.covers(op) {
            self.grant.get_or_insert(e);
        }
    }

    /// The decision of the rules found, if any: an explicit `None` denies;
    /// otherwise the union of the levels decides.
    fn settle(&self, eval: &AccessEvaluator) -> Option<Decision> {
        let first = self.first?;
        if let Some(deny) = self.deny {
            let rule = Some(eval.rules[deny.rule].clone());
            return Some(Decision { allowed: false, level: AccessLevel::None, rule });
        }
        let level = self.grant.map_or(first.level, |e| e.level);
        let rule = Some(eval.rules[self.grant.unwrap_or(first).rule].clone());
        Some(Decision { allowed: self.grant.is_some(), level, rule })
    }
}

/// An [`AccessPolicy`] indexed for checks.
///
/// ```
/// use tierfs_core::access::{AccessEvaluator, AccessLevel, AccessPolicy, AccessRule, Principal, StorageOperationType, Target};
///
/// let policy = AccessPolicy {
///     rules: vec![
///         AccessRule::parse("*", "public/", "*", "read").unwrap(),
///         AccessRule::parse("alice", "*", "*", "full").unwrap(),
///         AccessRule::parse("alice", "public/secret.txt", "*", "none").unwrap(),
///     ],
///     default: AccessLevel::None,
/// };
/// let eval = AccessEvaluator::new(&policy);
/// let key = |k| Target::Key { key: k, backends: &[] };
/// let bob = Principal::new("bob");
/// let alice = Principal::new("alice");
/// assert!(eval.decide(&bob, StorageOperationType::Read, key("public/a.txt")).allowed);
/// assert!(!eval.decide(&bob, StorageOperationType::Write, key("public/a.txt")).allowed);
/// // The prefix rule is more specific than alice's `*` grant: read only.
/// assert!(!eval.decide(&alice, StorageOperationType::Write, key("public/a.txt")).allowed);
/// assert!(!eval.decide(&alice, StorageOperationType::Read, key("public/secret.txt")).allowed);
/// assert!(eval.decide(&alice, StorageOperationType::Write, key("home/alice/x")).allowed);
/// ```
#[derive(Debug, Default)]
pub struct AccessEvaluator {
    rules: Vec<Arc<AccessRule>>,
    default: AccessLevel,
    users: HashMap<String, Bucket>,
    roles: HashMap<String, Bucket>,
    everyone: Bucket,
}

impl AccessEvaluator {
    /// Indexes `policy`.
    pub fn new(policy: &AccessPolicy) -> Self {
        let rules = policy.rules.iter().cloned().map(Arc::new).collect();
        let mut eval = AccessEvaluator { rules, default: policy.default, ..Default::default() };
        for (i, rule) in policy.rules.iter().enumerate() {
            let entry = Entry { operation: rule.operation, level: rule.level, rule: i };
            let bucket = match &rule.principal {
                PrincipalPattern::User(u) => eval.users.entry(u.clone()).or_default(),
                PrincipalPattern::Role(r) => eval.roles.entry(r.clone()).or_default(),
                PrincipalPattern::Any => &mut eval.everyone,
            };
            bucket.insert(&rule.resource, entry);
        }
        eval
    }

    /// The policy this evaluator was built from.
    pub fn policy(&self) -> AccessPolicy {
        AccessPolicy { rules: self.rules.iter().map(|r| (**r).clone()).collect(), default: self.default }
    }

    /// Whether there are no rules and the default allows everything.
    pub fn allows_everything(&self) -> bool {
        self.rules.is_empty() && self.default == AccessLevel::Full
    }

    fn buckets<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a Bucket> + 'a {
        let user = self.users.get(principal.id());
        let roles = principal.roles().iter().filter_map(|r| self.roles.get(r));
        user.into_iter().chain(roles).chain(std::iter::once(&self.everyone))
    }

    /// Decides whether `principal` may perform `op` on `target`.
    pub fn decide(&self, principal: &Principal, op: StorageOperationType, target: Target<'_>) -> Decision {
        if self.rules.is_empty() {
            return self.by_default(op);
        }
        // Candidates from the most specific down; the first level with a
        // matching rule decides.
        let mut found = Found::default();
        let mut gather = |pick: &dyn Fn(&Bucket) -> Option<&Vec<Entry>>| {
            for bucket in self.buckets(principal) {
                if let Some(entries) = pick(bucket) {
                    for e in entries.iter().filter(|e| e.operation.is_none_or(|o| o == op)) {
                        found.add(*e, op);
                    }
                }
            }
            found.settle(self)
        };
        if let Target::Key { key, .. } = target {
            if let Some(d) = gather(&|b| b.keys.get(key)) {
                return d;
            }
        }
        // Directory prefixes, longest first; a key `a/b` is also inside `a/b/`.
        let path = match target {
            Target::Key { key, .. } => Some((key, true)),
            Target::Prefix { prefix, .. } => Some((prefix, false)),
            _ => None,
        };
        if let Some((path, is_key)) = path {
            let own = is_key.then_some(path);
            let cuts = path.char_indices().filter(|(_, c)| *c == '/').map(|(i, _)| &path[..i]).rev();
            for dir in own.into_iter().chain(cuts) {
                if let Some(d) = gather(&|b| b.prefixes.get(dir)) {
                    return d;
                }
            }
        }
        // Every backend the target routes to is one specificity level.
        let backends: &[String] = match target {
            Target::Key { backends, .. } | Target::Prefix { backends, .. } => backends,
            _ => &[],
        };
        let single = match target {
            Target::Backend(b) => Some(b),
            _ => None,
        };
        let mut decided = None;
        for name in backends.iter().map(String::as_str).chain(single) {
            decided = gather(&|b| b.backends.get(name));
        }
        if let Some(d) = decided {
            return d;
        }
        gather(&|b| Some(&b.all)).unwrap_or_else(|| self.by_default(op))
    }

    fn by_default(&self, op: StorageOperationType) -> Decision {
        Decision { allowed: self.default.covers(op), level: self.default, rule: None }
    }

    /// Whether `principal` may read some key or directory inside `prefix`
    /// through a grant there (so that a listing may show the directory on
    /// the way to it). A grant counts only where it decides: one overruled
    /// by a denial (of the principal, one of its roles, or everyone) does
    /// not. `backends` gives the backends a key or prefix routes to.
    pub fn may_read_within(
        &self,
        principal: &Principal,
        prefix: &str,
        backends: &dyn Fn(&str) -> Vec<String>,
    ) -> bool {
        let end = format!("{prefix}\u{10FFFF}");
        self.buckets(principal).any(|b| {
            b.readable.range(prefix.to_owned()..end.clone()).any(|inside| {
                let routed = backends(inside);
                let target = if inside.ends_with('/') {
                    Target::Prefix { prefix: inside, backends: &routed }
                } else {
                    Target::Key { key: inside, backends: &routed }
                };
                self.decide(principal, StorageOperationType::Read, target).allowed
            })
        })
    }

    /// Every rule, in the order given.
    pub fn rules(&self) -> impl Iterator<Item = &AccessRule> {
        self.rules.iter().map(|r| &**r)
    }

    /// The level that applies when no rule matches.
    pub fn default_level(&self) -> AccessLevel {
        self.default
    }
}
