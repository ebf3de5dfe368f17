//! `explain`: which rule decides, what it grants, and where the key goes,
//! without performing anything.
//!
//! [`Session::explain`] is the faces' explain: a principal may explain its
//! own rights; explaining another principal's needs admin on the key (or
//! on `*`); every explanation is audited; and whether a cache holds the
//! key is shown only to a caller who may read it (it would tell whether
//! the key exists). [`StorageManager::explain`] is for whoever holds the
//! configuration file (the `tierfs explain` command): it reads the rules
//! only, touches no cache and writes no record.

use std::fmt;

use super::{RouteInfo, Session, StorageManager};
use crate::access::{
    AccessEvaluator, AccessLevel, AccessRule, Delegation, Principal, Resource, StorageOperationType, Target,
};
use crate::classes::{ClassIndex, Via};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{validate_key, validate_prefix};

/// The answer of [`StorageManager::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Who.
    pub principal: String,
    /// What.
    pub operation: StorageOperationType,
    /// On which key (or prefix, for List).
    pub key: String,
    /// Whether it would be allowed.
    pub allowed: bool,
    /// The level the deciding rules grant (the default when none matched).
    pub level: AccessLevel,
    /// The deciding rule; `None` means the default decided.
    pub rule: Option<AccessRule>,
    /// Where the key routes.
    pub route: RouteInfo,
    /// Where the route's policy puts the key among its backends, when it
    /// chooses (the owners of a sharded policy); `None` otherwise.
    pub placement: Option<String>,
    /// The key's storage class, where it comes from and the backends it
    /// puts the key on; `None` when it has none (its route places it).
    pub storage_class: Option<String>,
    /// The innermost quota counting the key (or prefix) and its usage.
    pub quota: Option<crate::QuotaUsage>,
    /// Whether a cache would serve a read of the key now; `None` when not
    /// asked (the caller may not read the key, or no store was consulted).
    pub cache: Option<CacheVerdict>,
}

pub use crate::policies::CacheVerdict;

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "ALLOWED" } else { "DENIED" };
        writeln!(f, "{verdict}: {} {} `{}`", self.principal, self.operation, self.key)?;
        match &self.rule {
            Some(rule) => writeln!(f, "  decided by rule: {rule}")?,
            None => writeln!(f, "  decided by the default level: {}", self.level)?,
        }
        writeln!(f, "  level granted: {}", self.level)?;
        let route = if self.route.prefix.is_empty() {
            "default route".to_owned()
        } else {
            format!("route `{}`", self.route.prefix)
        };
        writeln!(
            f,
            "  routes to: {route}, policy {}, backends {}",
            self.route.policy,
            self.route.backends.join(", ")
        )?;
        if let Some(placement) = &self.placement {
            writeln!(f, "  placement: {placement}")?;
        }
        if let Some(class) = &self.storage_class {
            writeln!(f, "  storage class: {class}")?;
        }
        if let Some(quota) = &self.quota {
            writeln!(f, "  quota: {quota}")?;
        }
        let cache = match self.cache {
            None => "not shown",
            Some(CacheVerdict::NoCache) => "no cache on this route",
            Some(CacheVerdict::Hit) => "a read would be served by the cache",
            Some(CacheVerdict::Miss) => "a read would miss the cache and go to the backend",
            Some(CacheVerdict::Unknown) => "the cache cannot tell without asking it",
        };
        write!(f, "  cache: {cache}")
    }
}

impl StorageManager {
    /// Explains how `principal` doing `operation` on `key` would be decided
    /// and routed, from the rules alone: no check, no audit record, no
    /// cache consulted. For whoever holds the configuration (the `tierfs
    /// explain` command); faces use [`Session::explain`].
    ///
    /// ```
    /// use tierfs_core::access::{Principal, StorageOperationType};
    /// use tierfs_core::{Config, StorageManager};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = Config::parse(
    ///     "[backends.m]\ntype = \"memory\"\n[access]\ndefault = \"none\"\n\
    ///      [[access.rules]]\nprincipal = \"alice\"\nresource = \"docs/\"\nlevel = \"read\"\n",
    ///     None,
    /// )?;
    /// let manager = StorageManager::open(config).await?;
    /// let e = manager.explain(&Principal::new("alice"), StorageOperationType::Write, "docs/a.txt")?;
    /// assert!(!e.allowed);
    /// assert_eq!(e.rule.unwrap().to_string(), "alice read on docs/ (any operation)");
    /// assert_eq!(e.route.backends, ["m"]);
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn explain(
        &self,
        principal: &Principal,
        operation: StorageOperationType,
        key: &str,
    ) -> Result<Explanation> {
        let security = self.shared.security.read().clone();
        explain_with(self, &security.access, principal, operation, key, None)
    }
}

impl Session {
    /// Explains how `principal` doing `operation` on `key` would be decided
    /// and routed, without doing it. A principal may explain its own
    /// rights; another's needs admin on the key (or on `*`). Audited as
    /// `explain`. Whether a cache holds the key is told only when this
    /// session's principal may read it.
    ///
    /// ```
    /// use tierfs_core::access::{Principal, StorageOperationType as Op};
    /// use tierfs_core::{Config, ErrorKind, StorageManager};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = Config::parse(
    ///     "[backends.m]\ntype = \"memory\"\n[access]\ndefault = \"none\"\n\
    ///      [[access.rules]]\nprincipal = \"alice\"\nresource = \"docs/\"\nlevel = \"read\"\n\
    ///      [[access.rules]]\nprincipal = \"root\"\nresource = \"*\"\nlevel = \"full\"\n",
    ///     None,
    /// )?;
    /// let manager = StorageManager::open(config).await?;
    /// let alice = manager.session("alice");
    /// assert!(alice.explain(alice.principal(), Op::Read, "docs/a.txt")?.allowed);
    /// // Another principal's rights are for administrators.
    /// let e = alice.explain(&Principal::new("bob"), Op::Read, "docs/a.txt").unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    /// assert!(!manager.session("root").explain(&Principal::new("bob"), Op::Read, "docs/a.txt")?.allowed);
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn explain(
        &self,
        principal: &Principal,
        operation: StorageOperationType,
        key: &str,
    ) -> Result<Explanation> {
        let list = operation == StorageOperationType::List;
        if list {
            validate_prefix(key)?;
        } else {
            validate_key(key)?;
        }
        let security = self.security();
        let state = self.state();
        let own = principal == self.principal();
        if !own {
            let backends = |path: &str| state.router.route(path).backends.clone();
            let known = |id: &str| self.shared().known(id);
            let resource = if list || key.is_empty() {
                if key.is_empty() {
                    Resource::All
                } else {
                    Resource::Prefix(key.to_owned())
                }
            } else {
                Resource::Key(key.to_owned())
            };
            if !Delegation::new(&security.access, &backends)
                .with_known(&known)
                .may_administer(self.principal(), &resource)
            {
                let e = Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "`{}` may not explain `{principal}`'s rights on `{key}`: that needs admin on `{resource}`; a principal may explain its own",
                        self.principal()
                    ),
                )
                .with_key(key);
                self.record(&security, "explain", &[key], false, Some(e.message()))?;
                return Err(e);
            }
        }
        let detail = format!("explain `{principal}` {operation}");
        self.record(&security, "explain", &[key], true, Some(&detail))?;
        let manager = StorageManager { shared: self.shared().clone() };
        // A listing has no cache verdict; a key's only for whom may read it.
        let readable = !list && self.allows(StorageOperationType::Read, key);
        let cache = readable.then(|| cache_verdict(&state, key));
        explain_with(&manager, &security.access, principal, operation, key, cache)
    }
}

/// What the cache of `key`'s route would do with a read now.
fn cache_verdict(state: &super::state::ManagerState, key: &str) -> CacheVerdict {
    state.router.route(key).hooks.iter().find_map(|h| h.cache_verdict(key)).unwrap_or(CacheVerdict::NoCache)
}

fn explain_with(
    manager: &StorageManager,
    access: &AccessEvaluator,
    principal: &Principal,
    operation: StorageOperationType,
    key: &str,
    cache: Option<CacheVerdict>,
) -> Result<Explanation> {
    let list = operation == StorageOperationType::List;
    if list {
        validate_prefix(key)?;
    } else {
        validate_key(key)?;
    }
    let route = manager.route_of(key);
    let state = manager.shared.state.load();
    let placement =
        if list { None } else { state.router.route(key).hooks.iter().find_map(|h| h.placement(key)) };
    let storage_class = if list { None } else { class_decision(&state, &manager.shared.classes, key) };
    let target = if list {
        Target::Prefix { prefix: key, backends: &route.backends }
    } else {
        Target::Key { key, backends: &route.backends }
    };
    let decision = access.decide(principal, operation, target);
    Ok(Explanation {
        principal: principal.to_string(),
        operation,
        key: key.to_owned(),
        allowed: decision.allowed,
        level: decision.level,
        rule: decision.rule.map(|r| (*r).clone()),
        route,
        placement,
        storage_class,
        quota: manager.shared.quotas.load().innermost(key),
        cache,
    })
}

/// What the class index decides for `key`, in words.
fn class_decision(state: &super::state::ManagerState, index: &ClassIndex, key: &str) -> Option<String> {
    let (entry, via) = index.lookup(key)?;
    let name = entry.class.as_deref().unwrap_or("none");
    let source = match via {
        Via::Key => "given to the key".to_owned(),
        Via::Prefix(p) => format!("inherited from `{p}`"),
    };
    Some(match state.locate(index, key) {
        Ok(located) => {
            let moving = match located.from {
                Some(from) => format!("; moving there from {}", from.backends.join(", ")),
                None => String::new(),
            };
            format!("`{name}` ({source}): on {}{moving}", located.at.backends.join(", "))
        }
        Err(e) => format!("`{name}` ({source}): {}", e.message()),
    })
}
