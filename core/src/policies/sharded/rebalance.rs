//! Moving keys to their owners: one key ([`settle_key`]), a pass over
//! every member ([`pass`]) and the transition a configuration starts
//! ([`transition`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::layout::{write_record, Placement, LAYOUT_KEY};
use super::{Layout, Shared};
use crate::error::{ErrorKind, Result};
use crate::key::Key;
use crate::metrics::StorageMetrics;
use crate::storage::{copy_value, ListEntry, ListOptions, Storage, StorageExt};

/// Keys moved at once by a pass, unless configured (`rebalance_concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Keys a pass collects before moving them (bounds its memory).
const BATCH: usize = 1024;

/// Wait before retrying a transition step that failed (a member down).
const RETRY: Duration = Duration::from_secs(2);

/// What one rebalance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebalanceReport {
    /// Keys looked at (every key of every member, once).
    pub examined: u64,
    /// Keys that were not exactly at their owners and were moved or copied.
    pub moved: u64,
}

/// Puts `key` exactly on its current owners: copies the preferred copy
/// (see [`Layout::candidates`]) to owners that lack it, then deletes the
/// copies on other members. `holders` names members believed to hold it
/// (each is checked). The caller holds the key's exclusive lock. Returns
/// whether anything changed.
pub(super) async fn settle_key(
    layout: &Layout,
    key: &Key,
    holders: &[&str],
    metrics: &StorageMetrics,
) -> Result<bool> {
    let owners: Vec<&str> = layout.record.current.owners(key.as_str());
    // Preference order: candidates first, then the other members in order.
    let mut order: Vec<&str> =
        layout.candidates(key.as_str()).into_iter().flatten().map(|(n, _)| n).collect();
    for m in &layout.order {
        if !order.contains(&m.as_str()) {
            order.push(m);
        }
    }
    order.retain(|m| owners.contains(m) || holders.contains(m));
    let stats = try_join_all(order.iter().map(|m| async move {
        match layout.members[*m].stat(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }))
    .await?;
    let present: Vec<&str> = order.iter().zip(&stats).filter(|(_, has)| **has).map(|(m, _)| *m).collect();
    let Some(source) = present.first().copied() else { return Ok(false) };
    let mut changed = false;
    for owner in owners.iter().filter(|o| !present.contains(o)) {
        copy_value(&*layout.members[source], key, &*layout.members[*owner], key, false).await?;
        changed = true;
    }
    for other in present.iter().filter(|m| !owners.contains(m)) {
        layout.members[*other].delete(key).await?;
        changed = true;
    }
    if changed {
        metrics.migration();
        tracing::debug!(key = %key, from = source, to = ?owners, "moved to its shard owners");
    }
    Ok(changed)
}

/// One pass over every member: their recursive listings merged in key
/// order, and every key not held by exactly its owners settled under its
/// lock. Stops early (returning `None`) if `generation` moves past `mine`.
pub(super) async fn pass(
    shared: &Shared,
    layout: &Arc<Layout>,
    metrics: &StorageMetrics,
    generation: &AtomicU64,
    mine: u64,
    concurrency: usize,
) -> Result<Option<RebalanceReport>> {
    let members: Vec<(String, Arc<dyn Storage>)> =
        layout.order.iter().map(|m| (m.clone(), layout.members[m].clone())).collect();
    let mut streams: Vec<BoxStream<'_, Result<ListEntry>>> =
        members.iter().map(|(_, s)| s.list_stream(ListOptions::recursive(""))).collect();
    let mut heads: Vec<Option<String>> = Vec::with_capacity(streams.len());
    for s in &mut streams {
        heads.push(next_key(s).await?);
    }
    let mut report = RebalanceReport::default();
    let mut work: Vec<(Key, Vec<String>)> = Vec::new();
    while let Some(min) = heads.iter().flatten().min().cloned() {
        let mut holders = Vec::new();
        for (i, head) in heads.iter_mut().enumerate() {
            if head.as_deref() == Some(min.as_str()) {
                holders.push(members[i].0.clone());
                *head = next_key(&mut streams[i]).await?;
            }
        }
        if min == LAYOUT_KEY {
            continue;
        }
        report.examined += 1;
        let mut owners = layout.record.current.owners(&min);
        owners.sort_unstable();
        let mut sorted: Vec<&str> = holders.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        if owners != sorted {
            let key = Key::new(min).map_err(|e| e.with_backend(holders.join(", ")))?;
            work.push((key, holders));
        }
        if work.len() >= BATCH {
            report.moved +=
                settle_all(shared, layout, metrics, std::mem::take(&mut work), generation, mine, concurrency)
                    .await?;
            if generation.load(Ordering::Acquire) != mine {
                return Ok(None);
            }
        }
    }
    report.moved += settle_all(shared, layout, metrics, work, generation, mine, concurrency).await?;
    if generation.load(Ordering::Acquire) != mine {
        return Ok(None);
    }
    Ok(Some(report))
}

async fn next_key(stream: &mut BoxStream<'_, Result<ListEntry>>) -> Result<Option<String>> {
    while let Some(entry) = stream.try_next().await? {
        if let ListEntry::Object(meta) = entry {
            return Ok(Some(meta.key.into_string()));
        }
    }
    Ok(None)
}

/// Settles `work` (keys with the members seen holding them), a few at
/// once; skips what is left once `generation` moves past `mine`.
async fn settle_all(
    shared: &Shared,
    layout: &Layout,
    metrics: &StorageMetrics,
    work: Vec<(Key, Vec<String>)>,
    generation: &AtomicU64,
    mine: u64,
    concurrency: usize,
) -> Result<u64> {
    futures::stream::iter(work)
        .map(|(key, holders)| async move {
            if generation.load(Ordering::Acquire) != mine {
                return Ok(false);
            }
            let _exclusive = shared.locks.write(key.as_str()).await;
            let holders: Vec<&str> = holders.iter().map(String::as_str).collect();
            settle_key(layout, &key, &holders, metrics).await
        })
        .buffer_unordered(concurrency)
        .try_fold(0u64, |n, changed| async move { Ok(n + changed as u64) })
        .await
}

/// Writes `record` to every member.
async fn write_everywhere(layout: &Layout) -> Result<()> {
    try_join_all(layout.all().map(|m| write_record(m, &layout.record))).await.map(drop)
}

/// What a configuration asks of its store.
pub(super) struct Target {
    pub placement: Placement,
    pub members: BTreeMap<String, Arc<dyn Storage>>,
    pub order: Vec<String>,
    /// Members whose keys are given up.
    pub forget: Vec<String>,
    /// Whether keys may be anywhere (a member joined holding keys).
    pub unknown: bool,
    /// Keys moved at once.
    pub concurrency: usize,
}

/// Brings the store to `target`: records the new placement on every
/// member, routes by it, waits out operations that routed by the old one,
/// then runs passes until one ends without error, and records the store
/// settled. Retries failed steps every [`RETRY`]; ends early when a newer
/// configuration starts its own transition.
///
/// `mine` is the generation the configuration took when it was built
/// ([`Shared::generation`]); it is recorded as applied once the store
/// has settled. `running` is released only after every handle on the
/// members this task held is dropped, so whoever waits for it (shutdown)
/// may open the members again at once.
pub(super) async fn transition(
    shared: Arc<Shared>,
    target: Target,
    metrics: Arc<StorageMetrics>,
    name: String,
    mine: u64,
    running: tokio::sync::OwnedMutexGuard<()>,
) {
    // `run` owns the handles and drops them when it returns.
    run(shared, target, metrics, name, mine).await;
    drop(running);
}

async fn run(shared: Arc<Shared>, target: Target, metrics: Arc<StorageMetrics>, name: String, mine: u64) {
    let _one_at_a_time = shared.transition.lock().await;
    let stale = || shared.generation.load(Ordering::Acquire) != mine;
    loop {
        if stale() {
            return;
        }
        let current = shared.layout.load_full();
        let mut record = current.record.forgetting(&target.forget).moved_to(target.placement.clone());
        record.unknown |= target.unknown;
        let layout = Layout::new(record, target.members.clone(), target.order.clone());
        match write_everywhere(&layout).await {
            Ok(()) => {
                shared.layout.store(Arc::new(layout));
                break;
            }
            Err(e) => {
                tracing::warn!(policy = %name, error = %e, "cannot record the sharded layout on every member; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    // Operations that routed by the previous layout hold their key's lock.
    shared.locks.barrier().await;
    loop {
        let layout = shared.layout.load_full();
        if layout.settled() {
            shared.applied.store(mine, Ordering::Release);
            return;
        }
        match pass(&shared, &layout, &metrics, &shared.generation, mine, target.concurrency).await {
            Ok(None) => return,
            Ok(Some(report)) => {
                let settled =
                    Layout::new(layout.record.settle(), layout.members.clone(), layout.order.clone());
                match write_everywhere(&settled).await {
                    Ok(()) => {
                        shared.layout.store(Arc::new(settled));
                        shared.applied.store(mine, Ordering::Release);
                        tracing::info!(
                            policy = %name, examined = report.examined, moved = report.moved,
                            "sharded store settled: every key is at its owners"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "cannot record the settled layout; retrying")
                    }
                }
            }
            Err(e) => tracing::warn!(policy = %name, error = %e, "rebalance pass failed; retrying"),
        }
        if stale() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}
