//! `explain`: which rule decides, what it grants, and where the key goes,
//! without performing anything (what `tierfs explain` prints).

use std::fmt;

use super::{RouteInfo, StorageManager};
use crate::access::{AccessLevel, AccessRule, Principal, StorageOperationType, Target};
use crate::error::Result;
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
    /// Whether a cache would serve a read of the key now.
    pub cache: CacheVerdict,
}

/// What the cache of a route would do with a read, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheVerdict {
    /// The route has no cache.
    NoCache,
    /// The cache holds the key (or its unflushed write): no backend is read.
    Hit,
    /// The cache does not hold it: the read goes to the backend.
    Miss,
    /// The cache cannot tell without a round trip (a remote cache).
    Unknown,
}

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
        let cache = match self.cache {
            CacheVerdict::NoCache => "no cache on this route",
            CacheVerdict::Hit => "a read would be served by the cache",
            CacheVerdict::Miss => "a read would miss the cache and go to the backend",
            CacheVerdict::Unknown => "the cache cannot tell without asking it",
        };
        write!(f, "  cache: {cache}")
    }
}

impl StorageManager {
    /// Explains how `principal` doing `operation` on `key` would be decided
    /// and routed, touching no backend and writing no audit record.
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
        let list = operation == StorageOperationType::List;
        if list {
            validate_prefix(key)?;
        } else {
            validate_key(key)?;
        }
        let route = self.route_of(key);
        let cache = {
            let state = self.shared.state.load();
            match (&state.router.route(key).cache, crate::key::Key::new(key)) {
                (None, _) => CacheVerdict::NoCache,
                (Some(_), Err(_)) => CacheVerdict::Unknown,
                (Some(c), Ok(k)) => match c.serves_now(&k) {
                    Some(true) => CacheVerdict::Hit,
                    Some(false) => CacheVerdict::Miss,
                    None => CacheVerdict::Unknown,
                },
            }
        };
        let security = self.shared.security.read().clone();
        let target = if list {
            Target::Prefix { prefix: key, backends: &route.backends }
        } else {
            Target::Key { key, backends: &route.backends }
        };
        let decision = security.access.decide(principal, operation, target);
        Ok(Explanation {
            principal: principal.to_string(),
            operation,
            key: key.to_owned(),
            allowed: decision.allowed,
            level: decision.level,
            rule: decision.rule.map(|r| (*r).clone()),
            route,
            cache,
        })
    }
}
