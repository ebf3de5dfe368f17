//! The `sharded` policy type: a [`ShardedStorage`] over its members, with
//! the rebalance a change of members starts.
//!
//! ```toml
//! [policy]
//! type = "sharded"
//! backends = ["disk1", "disk2", "disk3"]   # the owners
//! replicas = 1                             # copies of each key (default 1)
//! draining = ["disk0"]                     # own nothing; their keys move away
//! forget = []                              # former members whose keys are given up
//! rebalance_concurrency = 16               # keys moved at once (1 to 256)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use serde::Deserialize;

use super::layout::{read_record, LayoutRecord, Placement, LAYOUT_KEY};
use super::rebalance::{transition, Target};
use super::{Layout, ShardedStorage, Shared};
use crate::error::Result;
use crate::policies::{Member, PolicyContext, PolicyHooks, PolicyPlugin, PolicySettings};
use crate::storage::{ListOptions, Storage};

/// The `sharded` policy type.
#[derive(Debug)]
pub struct Sharded;

/// Settings of a `sharded` policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardedConfig {
    /// The members that own keys.
    pub backends: Vec<String>,
    /// Copies of each key, on that many members (default 1).
    #[serde(default = "one")]
    pub replicas: usize,
    /// Former members still read while their keys move to the owners;
    /// remove them from the configuration once the store has settled.
    #[serde(default)]
    pub draining: Vec<String>,
    /// Former members that are gone for good: their keys are given up.
    #[serde(default)]
    pub forget: Vec<String>,
    /// Keys a rebalance moves at once (default 16; lower it to leave the
    /// disks more room for other work while members change).
    #[serde(default = "default_concurrency")]
    pub rebalance_concurrency: usize,
}

fn default_concurrency() -> usize {
    super::rebalance::DEFAULT_CONCURRENCY
}

fn one() -> usize {
    1
}

impl ShardedConfig {
    fn check(&self, settings: &PolicySettings<'_>) -> Result<()> {
        if self.backends.is_empty() {
            return Err(settings.error("backends", "name at least one backend"));
        }
        let mut seen = BTreeSet::new();
        for (field, names) in
            [("backends", &self.backends), ("draining", &self.draining), ("forget", &self.forget)]
        {
            for name in names {
                if !seen.insert(name) {
                    return Err(settings.error(
                        field,
                        &format!("backend `{name}` is listed twice (in backends, draining or forget)"),
                    ));
                }
            }
        }
        if !(1..=256).contains(&self.rebalance_concurrency) {
            return Err(settings.error(
                "rebalance_concurrency",
                &format!("{} is out of range; allowed: 1 to 256", self.rebalance_concurrency),
            ));
        }
        if self.replicas == 0 || self.replicas > self.backends.len() {
            return Err(settings.error(
                "replicas",
                &format!(
                    "{} is out of range; allowed: 1 to {} (the number of backends)",
                    self.replicas,
                    self.backends.len()
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl PolicyPlugin for Sharded {
    fn name(&self) -> &str {
        "sharded"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed: ShardedConfig = settings.parse()?;
        parsed.check(settings)?;
        let owners =
            parsed.backends.iter().enumerate().map(|(i, b)| settings.member(&format!("backends[{i}]"), b));
        let draining =
            parsed.draining.iter().enumerate().map(|(i, b)| settings.member(&format!("draining[{i}]"), b));
        Ok(owners.chain(draining).collect())
    }

    async fn build(&self, mut context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: ShardedConfig = context.parse()?;
        let members: BTreeMap<String, Arc<dyn Storage>> =
            context.backend_names.iter().cloned().zip(context.backends.iter().cloned()).collect();
        let order = context.backend_names.clone();
        let placement = Placement { members: parsed.backends.clone(), replicas: parsed.replicas };

        // What the members say about themselves.
        let found = join_all(members.values().map(read_record)).await;
        let mut best: Option<LayoutRecord> = None;
        let mut joining = Vec::new();
        let mut unreadable = false;
        for ((name, member), result) in members.iter().zip(found) {
            match result {
                Ok(Some(record)) => {
                    if let Some(b) = &best {
                        if b.store != record.store {
                            return Err(context.error(
                                "backends",
                                &format!(
                                    "backend `{name}` belongs to another sharded store (id {}, not {}); \
                                     a backend can be a member of one sharded store only",
                                    record.store, b.store
                                ),
                            ));
                        }
                    }
                    if best.as_ref().is_none_or(|b| record.epoch > b.epoch) {
                        best = Some(record);
                    }
                }
                Ok(None) => joining.push(member.clone()),
                Err(e) if e.kind() == crate::ErrorKind::Config => {
                    return Err(context.error("backends", e.message()))
                }
                Err(e) => {
                    unreadable = true;
                    tracing::warn!(policy = context.field, backend = %name, error = %e,
                        "cannot read this member's layout record now; going by the others");
                }
            }
        }
        // A member that joins holding keys brings them in.
        let mut unknown = false;
        for member in &joining {
            let page = member.list(&ListOptions { limit: Some(2), ..ListOptions::recursive("") }).await;
            if page.is_ok_and(|p| p.entries.iter().any(|e| e.name() != LAYOUT_KEY)) {
                unknown = true;
            }
        }
        let record = match best {
            Some(record) => record,
            // With a member unreadable, keys may be anywhere.
            None => LayoutRecord { unknown: unknown || unreadable, ..LayoutRecord::fresh(placement.clone()) },
        };
        let record = record.forgetting(&parsed.forget);
        for name in record.member_names() {
            if !members.contains_key(name) {
                return Err(context.error(
                    "backends",
                    &format!(
                        "backend `{name}` is a member of this sharded store (layout epoch {}) and may hold keys; \
                         list it under `draining` until the store has settled (see `explain`), then remove it, \
                         or under `forget` to give its keys up",
                        record.epoch
                    ),
                ));
            }
        }
        let shared = Shared::open(Layout::new(record, members.clone(), order.clone()));
        // From here a transition running for an earlier configuration stops
        // at its next key (a build that fails later leaves the store to the
        // next start or reload, with reads still looking everywhere needed).
        let mine = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let name = format!("sharded({})", parsed.backends.join(", "));
        let target = Target {
            placement,
            members,
            order,
            forget: parsed.forget.clone(),
            unknown,
            concurrency: parsed.rebalance_concurrency,
        };
        let running = Arc::new(tokio::sync::Mutex::new(()));
        let held = running.clone().try_lock_owned().expect("a new lock is free");
        let task = transition(shared.clone(), target, context.metrics.clone(), name.clone(), mine, held);
        context.spawn(tokio::spawn(task));
        let storage = ShardedStorage::new(name, shared, context.metrics.clone());
        context.hooks(Arc::new(Hooks { storage: storage.clone(), generation: mine, running }));
        Ok(storage)
    }
}

/// Tells `explain` where a key goes; stops the rebalance at shutdown.
#[derive(Debug)]
struct Hooks {
    storage: Arc<ShardedStorage>,
    /// The generation this configuration's transition runs as.
    generation: u64,
    /// Held by the transition task until it has dropped its handles.
    running: Arc<tokio::sync::Mutex<()>>,
}

#[async_trait]
impl PolicyHooks for Hooks {
    /// At shutdown, stops this configuration's rebalance at its next key
    /// (unless a newer configuration already did) and waits until its
    /// task has let go of the members: they are free to open again once
    /// the manager is dropped. The record still says where keys may be;
    /// the next start resumes.
    async fn retire(&self) -> Result<()> {
        let shared = &self.storage.shared;
        let (mine, next) = (self.generation, self.generation + 1);
        let _ = shared.generation.compare_exchange(mine, next, Ordering::AcqRel, Ordering::Acquire);
        drop(self.running.lock().await);
        Ok(())
    }

    fn placement(&self, key: &str) -> Option<String> {
        let record = self.storage.record();
        let owners = self.storage.owners_of(key).join(", ");
        Some(if !self.storage.rebalancing() {
            format!("shard owners {owners} (layout epoch {})", record.epoch)
        } else {
            format!(
                "shard owners {owners} (layout epoch {}; rebalance in progress: reads also look where earlier layouts put the key)",
                record.epoch
            )
        })
    }
}
