//! Policies: how a route combines backends into one [`Storage`](crate::Storage).
//!
//! Every policy type is a [`PolicyPlugin`] in the
//! [`StorageRegistry`](crate::StorageRegistry), built-in or registered,
//! each in its own folder with its typed settings, their checks, its build
//! step and its [`PolicyHooks`]:
//!
//! | `type` | folder | what it builds |
//! |---|---|---|
//! | `always_local` | [`always_local`] | one backend, called directly |
//! | `prefer_cache` | [`cache`] | `CacheStorage`, a cache tier in front of a primary |
//! | `redundant` | [`redundant`] | `RedundantStorage`, copies on several backends |
//! | `tiered` | [`tiered`] | `TieredStorage`, hot and cold tiers with migration |
//! | `sharded` | [`sharded`] | `ShardedStorage`, keys spread over members by rendezvous hashing |
//! | `custom` | [`custom`] | a policy registered by name ([`StorageRegistry::register_policy`](crate::StorageRegistry::register_policy)) |
//!
//! A new built-in type is a new folder and one line in [`builtins`].

pub mod always_local;
pub mod cache;
pub mod custom;
mod plugin;
pub mod redundant;
pub mod sharded;
pub mod tiered;

use std::sync::Arc;

pub(crate) use plugin::Owned;
pub use plugin::{CacheVerdict, Member, PolicyContext, PolicyHooks, PolicyPlugin, PolicySettings};

/// The built-in policy types, in the order `StorageRegistry::with_builtins` registers them.
pub fn builtins() -> Vec<Arc<dyn PolicyPlugin>> {
    vec![
        Arc::new(always_local::AlwaysLocal),
        Arc::new(cache::PreferCache),
        Arc::new(redundant::Redundant),
        Arc::new(tiered::Tiered),
        Arc::new(sharded::Sharded),
        Arc::new(custom::Custom),
    ]
}

/// The built-in policy type named `kind`.
pub(crate) fn builtin(kind: &str) -> Option<Arc<dyn PolicyPlugin>> {
    builtins().into_iter().find(|p| p.name() == kind)
}
