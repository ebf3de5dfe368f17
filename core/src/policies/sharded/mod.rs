//! `ShardedStorage`: keys spread over several members by rendezvous
//! hashing, each key on `replicas` of them, with background rebalancing
//! when members join or leave.
//!
//! # Placement
//!
//! A key's owners are the `replicas` members with the highest score
//! `splitmix64(xxh3(key) xor xxh3(member name))` ([`Placement::owners`]). Adding a
//! member moves only the keys it now wins (about 1/n); removing one moves
//! only the keys it owned. Every read and write of a key goes to its
//! owners alone: a settled store never probes the other members.
//!
//! # The layout record
//!
//! Every member keeps a small record under the reserved key
//! [`LAYOUT_KEY`] (`.tierfs-sharded`; hidden from listings, refused to
//! callers): the store's id, an epoch, the current placement and the
//! earlier placements whose keys may not all have moved yet. The highest
//! epoch found on any member wins at start. A configuration whose members
//! differ from the record's current placement starts a *transition*: the
//! new record (the old placement now pending) is written to every member
//! first, then the layout in memory changes, then the rebalance moves
//! keys; once a pass has found every key at its owners the settled record
//! (nothing pending) is written. A crash anywhere leaves a record that
//! says where keys may be, and the next start resumes the rebalance.
//!
//! A member the record names that the configuration no longer lists is
//! refused at start: it may hold keys. List it under `draining` (it owns
//! nothing; its keys move away; remove it once settled) or, to give its
//! keys up, under `forget`.
//!
//! # Why no reader misses a key during a move
//!
//! - While a transition is pending, a read takes the key's shared lock and
//!   looks at the current owners first, then at the owners under each
//!   pending placement, newest first (every member when the record does
//!   not know where keys were): the first copy found wins. A copy at a
//!   newer placement is always the newer copy, because writes only ever go
//!   to the current owners.
//! - A move copies the key to its owners and then deletes the other
//!   copies, all under the key's exclusive lock, so a reader sees the key
//!   before or after, never half-way; a crash between leaves two copies,
//!   the owner's wins, and the next pass finishes the move.
//! - The layout and the key locks belong to the store (its id), not to one
//!   configuration: a reload swaps the layout that every operation,
//!   including those still running on the replaced configuration, routes
//!   by, so none can write where the new placement does not look.
//! - A delete during a transition removes every copy it may find.
//!
//! # Replicas
//!
//! With `replicas` ≥ 2 a write goes to every owner and succeeds when all
//! applied it; a read is served by the first healthy owner that answers,
//! so reads go on while a member is down, and writes of the keys it owns
//! fail until it is back (copies are not versioned against each other;
//! for writes that go on during an outage use the `redundant` policy).
//!
//! # Capabilities
//!
//! Batches are atomic only within one member: a batch whose keys share
//! their owners goes to those members whole; one that spans members is
//! refused (`Unsupported`), so `atomic_batch` is offered only with one
//! member. Likewise `rename` is atomic (each owner renames) when both
//! keys have the same owners, and refused with `Unsupported` otherwise;
//! the manager then moves the key by a copy and a delete.

mod layout;
mod policy;
mod rebalance;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, LazyLock, Weak};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{join_all, try_join_all, BoxFuture};
use parking_lot::Mutex;

pub use layout::{key_hash, member_seed, score, LayoutRecord, Placement, LAYOUT_KEY};
pub use policy::{Sharded, ShardedConfig};
pub use rebalance::RebalanceReport;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::key_locks::KeyLocks;
use crate::metrics::StorageMetrics;
use crate::storage::{
    merge_list, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, MergeSource,
    MetadataChanges, ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

/// Where keys are, as the running store knows it.
#[derive(Debug)]
pub(crate) struct Layout {
    pub record: LayoutRecord,
    /// Every configured member (owners and draining ones), by name.
    pub members: BTreeMap<String, Arc<dyn Storage>>,
    /// The members in listing order: owners in configuration order, then
    /// the draining ones.
    pub order: Vec<String>,
    /// `xxh3(name)` of each current owner, by position in
    /// `record.current.members`.
    seeds: Vec<u64>,
    /// Each current owner's storage, by the same position (no lookup by
    /// name on the read path).
    current: Vec<Arc<dyn Storage>>,
}

impl Layout {
    pub fn new(
        record: LayoutRecord,
        members: BTreeMap<String, Arc<dyn Storage>>,
        order: Vec<String>,
    ) -> Self {
        let seeds = record.current.members.iter().map(|m| layout::member_seed(m)).collect();
        let current = record.current.members.iter().map(|m| members[m].clone()).collect();
        Layout { record, members, order, seeds, current }
    }

    fn settled(&self) -> bool {
        self.record.settled()
    }

    /// The single owner of `key` (with one replica), without allocating.
    fn owner(&self, key: &str) -> &Arc<dyn Storage> {
        let hash = layout::key_hash(key);
        let best = self
            .seeds
            .iter()
            .enumerate()
            .max_by_key(|(_, seed)| layout::score(hash, **seed))
            .map(|(i, _)| i)
            .expect("a placement has members");
        &self.current[best]
    }

    /// The current owners of `key`, best first.
    pub fn owners(&self, key: &str) -> Vec<(&str, &Arc<dyn Storage>)> {
        self.record.current.owners(key).into_iter().map(|name| (name, &self.members[name])).collect()
    }

    /// Where `key` may be, as groups in order of preference: the current
    /// owners, then the owners under each pending placement, newest first,
    /// then (when the record does not know) every other member. Each
    /// member appears once.
    pub fn candidates(&self, key: &str) -> Vec<Vec<(&str, &Arc<dyn Storage>)>> {
        let mut seen: Vec<&str> = Vec::new();
        let mut groups = Vec::new();
        let placements = std::iter::once(&self.record.current).chain(self.record.pending.iter().rev());
        for placement in placements {
            let group: Vec<&str> = placement.owners(key).into_iter().filter(|m| !seen.contains(m)).collect();
            seen.extend(&group);
            if !group.is_empty() {
                groups.push(group);
            }
        }
        if self.record.unknown {
            // Not copies of each other: each is asked on its own.
            groups
                .extend(self.order.iter().map(String::as_str).filter(|m| !seen.contains(m)).map(|m| vec![m]));
        }
        groups
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .filter_map(|m| self.members.get_key_value(m))
                    .map(|(n, s)| (n.as_str(), s))
                    .collect()
            })
            .collect()
    }

    /// Fails with `AlreadyExists` if `key` is on a non-owner candidate
    /// (owners check conditions themselves); errors name `store`.
    async fn check_absent_elsewhere(&self, key: &Key, store: &str) -> Result<()> {
        if self.settled() {
            return Ok(());
        }
        for (_, member) in self.candidates(key.as_str()).into_iter().skip(1).flatten() {
            match member.stat(key).await {
                Ok(_) => {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        "the key exists and the write asked that it did not",
                    )
                    .with_key(key.as_str())
                    .with_backend(store))
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn all(&self) -> impl Iterator<Item = &Arc<dyn Storage>> {
        self.order.iter().map(|m| &self.members[m])
    }
}

/// What every configuration of one sharded store shares in the process:
/// the layout operations route by and the per-key locks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub layout: ArcSwap<Layout>,
    pub locks: KeyLocks,
    /// Serializes transitions (a reload's rebalance waits for the previous one to stop).
    pub transition: tokio::sync::Mutex<()>,
    /// Counts transitions asked for; a transition stops once a newer one exists.
    pub generation: std::sync::atomic::AtomicU64,
    /// The last transition that ran to its end (the store settled).
    pub applied: std::sync::atomic::AtomicU64,
}

/// The stores open in this process, by id, so a reload's new configuration
/// shares its predecessor's layout and locks.
static STORES: LazyLock<Mutex<HashMap<String, Weak<Shared>>>> = LazyLock::new(Default::default);

impl Shared {
    /// The shared state of store `record.store`: the one already open in
    /// the process, else a new one with `layout`.
    pub fn open(layout: Layout) -> Arc<Shared> {
        let mut stores = STORES.lock();
        stores.retain(|_, w| w.strong_count() > 0);
        if let Some(shared) = stores.get(&layout.record.store).and_then(Weak::upgrade) {
            return shared;
        }
        let id = layout.record.store.clone();
        let shared = Arc::new(Shared {
            layout: ArcSwap::from_pointee(layout),
            locks: KeyLocks::new(),
            transition: tokio::sync::Mutex::new(()),
            generation: Default::default(),
            applied: Default::default(),
        });
        stores.insert(id, Arc::downgrade(&shared));
        shared
    }
}

/// Keys spread over members; see the module documentation.
#[derive(Debug)]
pub struct ShardedStorage {
    name: String,
    shared: Arc<Shared>,
    metrics: Arc<StorageMetrics>,
}

fn reserved(key: &Key) -> Result<()> {
    if key.as_str() == LAYOUT_KEY {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "`{LAYOUT_KEY}` is reserved by the sharded policy for its layout record; use another key"
            ),
        )
        .with_key(key.as_str()));
    }
    Ok(())
}

fn is_not_found(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

impl ShardedStorage {
    pub(crate) fn new(name: String, shared: Arc<Shared>, metrics: Arc<StorageMetrics>) -> Arc<Self> {
        Arc::new(ShardedStorage { name, shared, metrics })
    }

    /// The record the store routes by now.
    pub fn record(&self) -> LayoutRecord {
        self.shared.layout.load().record.clone()
    }

    /// Whether keys may still be away from their owners: a transition was
    /// asked for and has not settled the store yet.
    pub fn rebalancing(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.shared.layout.load().settled()
            || self.shared.applied.load(Ordering::Acquire) != self.shared.generation.load(Ordering::Acquire)
    }

    /// The members that own `key` now, best first.
    pub fn owners_of(&self, key: &str) -> Vec<String> {
        self.shared.layout.load().record.current.owners(key).into_iter().map(str::to_owned).collect()
    }

    fn not_found(&self, key: &Key, op: &'static str) -> Error {
        Error::not_found(key.as_str()).with_backend(self.name.clone()).with_operation(op)
    }

    /// Reads with `f` from where the key is (see the module documentation).
    async fn read_with<T, F>(&self, key: &Key, op: &'static str, f: F) -> Result<T>
    where
        F: Fn(Arc<dyn Storage>) -> BoxFuture<'static, Result<T>>,
    {
        reserved(key)?;
        let layout = self.shared.layout.load_full();
        let _shared = if layout.settled() { None } else { Some(self.shared.locks.read(key.as_str()).await) };
        // Under the lock: a transition that began meanwhile is seen.
        let layout = self.shared.layout.load_full();
        for group in layout.candidates(key.as_str()) {
            let mut failure = None;
            let mut missing = false;
            for (_, member) in group
                .iter()
                .filter(|(_, m)| m.is_healthy())
                .chain(group.iter().filter(|(_, m)| !m.is_healthy()))
            {
                match f((*member).clone()).await {
                    Ok(found) => return Ok(found),
                    Err(e) if is_not_found(&e) => missing = true,
                    Err(e) => failure = Some(e),
                }
                // Copies of the owners are equal: one answer is enough.
                if missing {
                    break;
                }
            }
            if let (Some(e), false) = (failure, missing) {
                // A member that may hold a newer copy failed: no older one is served.
                return Err(e);
            }
        }
        Err(self.not_found(key, op))
    }

    /// The fast path of a read: with a settled layout and one replica, the
    /// key's owner and the layout's epoch (`None`: take [`read_with`](Self::read_with)).
    fn settled_owner(&self, key: &Key) -> Option<(Arc<dyn Storage>, u64)> {
        let layout = self.shared.layout.load();
        if !layout.settled() || layout.record.current.replicas != 1 || key.as_str() == LAYOUT_KEY {
            return None;
        }
        Some((layout.owner(key.as_str()).clone(), layout.record.epoch))
    }

    /// Whether a read that found nothing by the epoch-`epoch` layout must
    /// look again: a transition began since, and the key may have moved.
    fn moved_since(&self, epoch: u64, result: &Result<impl Sized>) -> bool {
        matches!(result, Err(e) if is_not_found(e)) && self.shared.layout.load().record.epoch != epoch
    }

    /// Moves `key` to its current owners if a transition left it
    /// elsewhere. Holds no lock: the caller holds the key's exclusive one.
    async fn settle_locked(&self, layout: &Layout, key: &Key) -> Result<bool> {
        if layout.settled() {
            return Ok(false);
        }
        let holders: Vec<&str> =
            layout.candidates(key.as_str()).into_iter().flatten().map(|(n, _)| n).collect();
        rebalance::settle_key(layout, key, &holders, &self.metrics).await
    }

    /// Deletes `key` from every member it may be on (current owners, and
    /// during a transition the other candidates).
    async fn delete_locked(&self, layout: &Layout, key: &Key) -> Result<()> {
        let targets: Vec<Arc<dyn Storage>> = if layout.settled() {
            layout.owners(key.as_str()).into_iter().map(|(_, s)| s.clone()).collect()
        } else {
            layout.candidates(key.as_str()).into_iter().flatten().map(|(_, s)| s.clone()).collect()
        };
        try_join_all(targets.iter().map(|s| s.delete(key))).await.map(drop)
    }

    /// Applies `f` to every owner of `key`: the first (best) one first, with
    /// `first`'s condition, then the others concurrently with `rest`'s.
    async fn change_owners<F>(&self, layout: &Layout, key: &Key, f: F) -> Result<ObjectMeta>
    where
        F: Fn(Arc<dyn Storage>, bool) -> BoxFuture<'static, Result<ObjectMeta>>,
    {
        let owners = layout.owners(key.as_str());
        let first = f(owners[0].1.clone(), true).await?;
        try_join_all(owners[1..].iter().map(|(_, s)| f((*s).clone(), false))).await?;
        Ok(first)
    }
}

#[async_trait]
impl Storage for ShardedStorage {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        let layout = self.shared.layout.load();
        let one_member = Capabilities { atomic_batch: layout.members.len() == 1, ..Capabilities::ALL };
        layout.all().fold(one_member, |caps, member| caps.and(member.capabilities()))
    }

    /// Healthy while enough members are to serve every key: all of them
    /// with one replica, all but `replicas - 1` with more.
    fn is_healthy(&self) -> bool {
        let layout = self.shared.layout.load();
        let down = layout.all().filter(|m| !m.is_healthy()).count();
        down < layout.record.current.replicas
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        if let Some((owner, epoch)) = self.settled_owner(key) {
            let found = owner.get(key).await;
            if !self.moved_since(epoch, &found) {
                return found;
            }
        }
        let k = key.clone();
        self.read_with(key, "get", move |s| {
            let k = k.clone();
            Box::pin(async move { s.get(&k).await })
        })
        .await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        if let Some((owner, epoch)) = self.settled_owner(key) {
            let found = owner.get_range(key, range.clone()).await;
            if !self.moved_since(epoch, &found) {
                return found;
            }
        }
        let k = key.clone();
        self.read_with(key, "get_range", move |s| {
            let (k, range) = (k.clone(), range.clone());
            Box::pin(async move { s.get_range(&k, range).await })
        })
        .await
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        if let Some((owner, epoch)) = self.settled_owner(key) {
            let found = owner.get_with_meta(key).await;
            if !self.moved_since(epoch, &found) {
                return found;
            }
        }
        let k = key.clone();
        self.read_with(key, "get", move |s| {
            let k = k.clone();
            Box::pin(async move { s.get_with_meta(&k).await })
        })
        .await
    }

    fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        let layout = self.shared.layout.load();
        if !layout.settled() || layout.record.current.replicas != 1 || key.as_str() == LAYOUT_KEY {
            return None;
        }
        let found = layout.owner(key.as_str()).get_now(key)?;
        // A transition began since: `get` looks where the key may be.
        (!self.moved_since(layout.record.epoch, &found)).then_some(found)
    }

    fn put_now(&self, key: &Key, value: &Bytes, options: &PutOptions) -> Option<Result<ObjectMeta>> {
        let layout = self.shared.layout.load();
        if !layout.settled() || layout.record.current.replicas != 1 || key.as_str() == LAYOUT_KEY {
            return None;
        }
        let _exclusive = self.shared.locks.try_write(key.as_str())?;
        // Under the lock the layout may have changed: only the same one counts.
        if !std::ptr::eq(&**layout, &**self.shared.layout.load()) {
            return None;
        }
        layout.owner(key.as_str()).put_now(key, value, options)
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        reserved(key)?;
        let _exclusive = self.shared.locks.write(key.as_str()).await;
        let layout = self.shared.layout.load_full();
        if options.if_not_exists {
            layout.check_absent_elsewhere(key, &self.name).await?;
        }
        let k = key.clone();
        self.change_owners(&layout, key, move |s, _| {
            let (k, value, options) = (k.clone(), value.clone(), options.clone());
            Box::pin(async move { s.put(&k, value, options).await })
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        reserved(key)?;
        let _exclusive = self.shared.locks.write(key.as_str()).await;
        let layout = self.shared.layout.load_full();
        self.delete_locked(&layout, key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        if let Some((owner, epoch)) = self.settled_owner(key) {
            let found = owner.stat(key).await;
            if !self.moved_since(epoch, &found) {
                return found;
            }
        }
        let k = key.clone();
        self.read_with(key, "stat", move |s| {
            let k = k.clone();
            Box::pin(async move { s.stat(&k).await })
        })
        .await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let layout = self.shared.layout.load_full();
        let hide = |k: &str| k != LAYOUT_KEY;
        let sources: Vec<MergeSource<'_>> =
            layout.all().map(|s| MergeSource { storage: s.clone(), keep: Some(&hide) }).collect();
        merge_list(&sources, options).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        for op in &ops {
            reserved(op.key())?;
        }
        let keys: Vec<&str> = ops.iter().map(|o| o.key().as_str()).collect();
        let _exclusive = self.shared.locks.write_many(&keys).await;
        let layout = self.shared.layout.load_full();
        let owners = |k: &str| layout.record.current.owners(k);
        let first = ops.first().map(|o| owners(o.key().as_str())).unwrap_or_default();
        let mut sorted_first = first.clone();
        sorted_first.sort_unstable();
        for op in &ops {
            let mut these = owners(op.key().as_str());
            these.sort_unstable();
            if these != sorted_first {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the keys of this batch live on different members of the sharded policy (`{}` on {}, `{}` on {}); \
                         a batch is atomic only within one member",
                        ops[0].key(),
                        first.join(", "),
                        op.key(),
                        owners(op.key().as_str()).join(", ")
                    ),
                )
                .with_backend(self.name.clone())
                .with_operation("batch"));
            }
        }
        if !layout.settled() {
            for op in &ops {
                match op {
                    BatchOp::Put { key, if_not_exists: true, .. } => {
                        layout.check_absent_elsewhere(key, &self.name).await?;
                        self.settle_locked(&layout, key).await?;
                    }
                    BatchOp::Put { key, .. } => {
                        self.settle_locked(&layout, key).await?;
                    }
                    BatchOp::Delete { key } => self.delete_locked(&layout, key).await?,
                }
            }
        }
        let members: Vec<&Arc<dyn Storage>> = first.iter().map(|m| &layout.members[*m]).collect();
        let results = join_all(members.iter().map(|s| s.batch(ops.clone()))).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some((owner, epoch)) = self.settled_owner(key) {
            let found = owner.read(key, range.clone()).await;
            if !self.moved_since(epoch, &found) {
                return found;
            }
        }
        let k = key.clone();
        self.read_with(key, "read", move |s| {
            let (k, range) = (k.clone(), range.clone());
            Box::pin(async move { s.read(&k, range).await })
        })
        .await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        reserved(key)?;
        writer::ShardedWriter::open(self, key, options).await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        reserved(from)?;
        reserved(to)?;
        let _exclusive = self.shared.locks.write_many(&[from.as_str(), to.as_str()]).await;
        let layout = self.shared.layout.load_full();
        let (mut a, mut b) =
            (layout.record.current.owners(from.as_str()), layout.record.current.owners(to.as_str()));
        a.sort_unstable();
        b.sort_unstable();
        if a != b {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "`{from}` and `{to}` live on different members of the sharded policy ({} and {}); \
                     a rename is atomic only within one member",
                    a.join(", "),
                    b.join(", ")
                ),
            )
            .with_key(from.as_str())
            .with_backend(self.name.clone())
            .with_operation("rename"));
        }
        if !layout.settled() {
            self.settle_locked(&layout, from).await?;
            // The target's older copies elsewhere must not show through.
            self.delete_locked(&layout, to).await?;
        }
        for (_, member) in layout.owners(from.as_str()) {
            member.rename(from, to).await?;
        }
        Ok(())
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        reserved(key)?;
        let _exclusive = self.shared.locks.write(key.as_str()).await;
        let layout = self.shared.layout.load_full();
        self.settle_locked(&layout, key).await?;
        let (k, changes, condition) = (key.clone(), changes.clone(), condition.clone());
        self.change_owners(&layout, key, move |s, first| {
            let (k, changes) = (k.clone(), changes.clone());
            let condition = if first { condition.clone() } else { Condition::Exists };
            Box::pin(async move { s.set_metadata(&k, &changes, &condition).await })
        })
        .await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        reserved(key)?;
        let _exclusive = self.shared.locks.write(key.as_str()).await;
        let layout = self.shared.layout.load_full();
        self.settle_locked(&layout, key).await?;
        let (k, patch, condition) = (key.clone(), patch.clone(), condition.clone());
        self.change_owners(&layout, key, move |s, first| {
            let (k, patch) = (k.clone(), patch.clone());
            let condition = if first { condition.clone() } else { Condition::Exists };
            Box::pin(async move { s.patch(&k, &patch, &condition).await })
        })
        .await
    }

    async fn sync(&self) -> Result<()> {
        let layout = self.shared.layout.load_full();
        try_join_all(layout.all().map(|s| s.sync())).await.map(drop)
    }
}
