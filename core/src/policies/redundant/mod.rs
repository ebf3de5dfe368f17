//! `RedundantStorage`: copies of every key on several backends, the layer
//! behind the `Redundant { copies, write_quorum }` policy.
//!
//! # Revisions
//!
//! Every value written through the layer carries a revision in its metadata
//! under [`REVISION_KEY`] (`tierfs.rev`): a `u64` from a hybrid clock,
//! `max(now in nanoseconds, last + 1)`, strictly increasing within the
//! process. Members' own versions are not comparable with each other;
//! revisions are, so the copy with the highest revision is the current one.
//! The entry is hidden on the way out: callers get back exactly the metadata
//! they wrote (a caller entry that itself starts with `tierfs.rev` is stored
//! escaped and restored), and [`ObjectMeta::version`] is the revision, the
//! same whichever member answered. A copy written around the layer has no
//! revision and counts as revision 0.
//!
//! Revisions of different processes are ordered by their wall clocks; the
//! clock also moves past every revision it reads from a member, so a process
//! whose clock lags does not keep losing to one it has seen. The ordering
//! and locking below are per process: two processes writing the same
//! members at once are not coordinated beyond "highest revision wins".
//!
//! # Writes
//!
//! `put`, `delete`, `batch`, `write` (streamed) and `rename` go to every
//! healthy member concurrently and succeed once `write_quorum` members
//! acknowledged; the others finish in the background. If fewer members are
//! healthy than the quorum needs, the write is refused at once with a
//! retryable `Unavailable` and nothing is written. If members fail so that
//! the quorum cannot be reached, the write fails with a retryable
//! `Unavailable` naming each member and its error; the members that did
//! apply it keep it, and repair later converges every copy to the highest
//! revision, so a failed write may still take effect (as with any store that
//! cannot tell a lost reply from a lost write). Retrying is safe.
//!
//! - Streamed writes fan each chunk out to all members and wait for all of
//!   them before taking the next, so memory is bounded by one chunk; a member
//!   that fails mid-stream is dropped, and the stream fails once fewer than
//!   the quorum remain. `finish` succeeds at quorum.
//! - A batch is sent whole to each member, which applies it atomically; the
//!   layer offers batches only when every member has atomic batches.
//! - `if_not_exists` (on puts, streamed writes and batch puts) is decided by
//!   the layer with every member's lock on the key held, from the resolved
//!   state of the key (see below), and members then store unconditionally.
//!   A streamed write learns it at `finish` (`AlreadyExists`, nothing
//!   published), as with any backend that commits at `finish`.
//! - `rename` runs each member's atomic rename with every member's locks on
//!   both keys held, after bringing the source's copies in line. If some
//!   member missed it, the target is re-stamped with the rename's revision
//!   on the members that did it, so the highest revision still wins.
//!
//! Overlapping writes of one key land in revision order on every member: a
//! member operation runs under that member's lock on the key and is skipped
//! if a newer revision was already applied there.
//!
//! # Hints and tombstones
//!
//! A member that failed a write, was skipped as unhealthy, or had not
//! finished when the write was acknowledged is recorded as lagging for that
//! key, with the revision it missed. A copy on a lagging member below that
//! revision is stale and is never served or copied. A delete leaves a
//! tombstone until every member has applied it, so repair never brings a
//! deleted value back. The hint set's size is the number of keys written
//! while a member was down. With a hint log
//! ([`RedundantStorage::with_hint_log`]; the manager's default puts it in
//! the first `local` member's directory), every mark and tombstone is
//! appended and `fdatasync`ed before the write that caused it is
//! acknowledged, so they survive a crash: a key deleted (or renamed away)
//! while a member was down stays deleted after a restart and a scrub. Only
//! keys some member lags on are written, so a healthy set that waits for
//! every member does no hint I/O. **Limit without a log**
//! ([`RedundantStorage::new`]): if the process stops while a member is
//! down, the hints are lost; the scrubber's full comparison then restores
//! missing copies from the others, which repairs every write but can
//! resurrect a key deleted during the outage. Nothing else is lost.
//!
//! # Reads
//!
//! `get`, `get_range`, `stat` and `read` ask every healthy member for the
//! key's description (a cheap `stat`, concurrently) rather than trusting the
//! first member, because only comparing revisions reveals a stale copy that
//! no hint speaks of (written around the layer, or left by a previous
//! process). They then resolve the current state: the trusted copy with
//! the highest revision, unless a tombstone is more recent; a member that
//! is unhealthy, lagging, or says `NotFound` is simply outvoted. The value
//! is then read from the member holding the current copy (the first listed
//! among equals), falling back to the next candidate if that member fails
//! meanwhile. So no read fails while any member holding the current copy is
//! up, a stale copy (lower revision) is never served while a current one is
//! reachable, and a read fails with `Unavailable` rather than serve a copy
//! known to be stale.
//!
//! When a read sees a member with a missing or stale copy (or holding a
//! deleted key), it repairs it in the background: the value is streamed with
//! its metadata from the current copy, counted by
//! [`StorageMetrics::repair`]. At most one repair per key runs at a time;
//! a read that finds a repair or a write of the key running asks for a
//! recheck, done once they end.
//!
//! `list` merges the listings of all healthy members (a sorted merge with
//! deduplication; pages stop at the smallest point every member has listed
//! up to, so pagination is exact), resolves each object the same way, hides
//! keys whose tombstone is newer than every copy, and reports the current
//! copy's size and metadata. A group (`a/b/`) is shown when any member has a
//! key under it, so a group whose keys were all deleted while a member was
//! down shows until that member is repaired.
//!
//! # Catch-up
//!
//! [`RedundantStorage::scrub_once`] walks the hint set first, repairing each
//! lagging key on the members that are reachable again, then compares all
//! members in full (recursive listings merged in key order, comparing
//! revisions) and repairs missing or stale copies. A repair holds every
//! member's lock on its key, re-reads the state and applies the highest
//! revision (or the tombstone) to every reachable member; writes of that key
//! wait meanwhile. [`RedundantStorage::spawn_scrubber`] runs it periodically.
//! Health probing is not the layer's job: it routes around members whose
//! [`Storage::is_healthy`] is false (see
//! [`HealthStorage`](crate::layers::HealthStorage)), and whoever owns the
//! members probes them.
//!
//! # Capabilities
//!
//! The intersection of the members' (atomic batch, range read, rename,
//! conditional put, streaming only if every member has it), persistent and shared if
//! any member is. [`Storage::is_healthy`] is true while at least
//! `write_quorum` members are.

mod changes;
mod hint;
mod hint_log;
mod hints;
mod list;
mod policy;
mod replicate;
mod resolve;
mod revision;
mod scrub;
mod writer;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{join_all, BoxFuture, FutureExt};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::metrics::StorageMetrics;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, Metadata, MetadataChanges,
    ObjectMeta, PutOptions, Storage, ValueWriter,
};

use hints::{lock_all, Held, KeyGuard, KeyTable};
pub use policy::{Redundant, RedundantConfig};
use replicate::{MemberOp, Replication};
use resolve::{resolve, Replica, Resolved};
use revision::RevisionClock;
pub use revision::REVISION_KEY;
pub use scrub::{ScrubReport, MAX_REPORTED_ERRORS};

/// Copies of every key on several backends, with quorum writes, reads from
/// the current copy, read-repair and a scrubber. See the [module
/// documentation](self) for the design and its limits.
///
/// ```
/// use std::sync::Arc;
/// use tierfs_core::metrics::StorageMetrics;
/// use tierfs_core::policies::redundant::RedundantStorage;
/// use tierfs_core::{Key, MemoryStorage, Metadata, PutOptions, Storage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let members: Vec<Arc<dyn Storage>> =
///     vec![Arc::new(MemoryStorage::new("a")), Arc::new(MemoryStorage::new("b")), Arc::new(MemoryStorage::new("c"))];
/// let metrics = StorageMetrics::new();
/// // Three copies; a write succeeds once two members have it.
/// let store = RedundantStorage::new("triple", members.clone(), 2, metrics.clone())?;
///
/// let key = Key::new("docs/readme.txt")?;
/// let mut metadata = Metadata::new();
/// metadata.insert("posix.mode".into(), "100644".into());
/// store.put(&key, "hello".into(), PutOptions::with_metadata(metadata.clone())).await?;
/// assert_eq!(&store.get(&key).await?[..], b"hello");
/// // Callers see their own metadata; the revision is the version.
/// let meta = store.stat(&key).await?;
/// assert_eq!(meta.metadata, metadata);
///
/// // A copy lost behind the layer's back is restored by the scrubber.
/// store.scrub_once().await?;
/// members[2].delete(&key).await?;
/// let report = store.scrub_once().await?;
/// assert_eq!(report.repairs, 1);
/// let copy = members[2].stat(&key).await?;
/// assert_eq!(copy.metadata["tierfs.rev"], meta.version);
/// assert_eq!(metrics.snapshot().repairs, 1);
/// # Ok::<_, tierfs_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct RedundantStorage {
    shared: Arc<Shared>,
}

/// State shared by the layer and its background tasks.
#[derive(Debug)]
struct Shared {
    name: String,
    members: Vec<Arc<dyn Storage>>,
    quorum: usize,
    metrics: Arc<StorageMetrics>,
    clock: RevisionClock,
    keys: Arc<KeyTable>,
    capabilities: Capabilities,
}

impl RedundantStorage {
    /// A redundant set named `name` keeping one copy on each of `members`
    /// (so `copies` is `members.len()`), acknowledging writes once
    /// `write_quorum` members have them. Repairs are counted in `metrics`.
    ///
    /// Refused with a `Config` error when there are no members, a member is
    /// listed twice, or `write_quorum` is 0 or more than the number of
    /// members.
    pub fn new(
        name: impl Into<String>,
        members: Vec<Arc<dyn Storage>>,
        write_quorum: usize,
        metrics: Arc<StorageMetrics>,
    ) -> Result<Arc<Self>> {
        Self::build(name.into(), members, write_quorum, metrics, None)
    }

    /// [`RedundantStorage::new`] with its hints and tombstones kept in the
    /// log at `hints` (created if missing, replayed if not), so they
    /// survive a crash: a key deleted while a member was down stays
    /// deleted after a restart. A set rebuilt over the same log in this
    /// process (a reload) shares the hints of the set it replaces.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tierfs_core::metrics::StorageMetrics;
    /// use tierfs_core::policies::redundant::RedundantStorage;
    /// use tierfs_core::{MemoryStorage, Storage};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let members: Vec<Arc<dyn Storage>> =
    ///     vec![Arc::new(MemoryStorage::new("a")), Arc::new(MemoryStorage::new("b"))];
    /// let set = RedundantStorage::with_hint_log(
    ///     "copies", members, 1, StorageMetrics::new(), &dir.path().join("hints.log"),
    /// ).unwrap();
    /// assert_eq!(set.write_quorum(), 1);
    /// ```
    pub fn with_hint_log(
        name: impl Into<String>,
        members: Vec<Arc<dyn Storage>>,
        write_quorum: usize,
        metrics: Arc<StorageMetrics>,
        hints: &std::path::Path,
    ) -> Result<Arc<Self>> {
        Self::build(name.into(), members, write_quorum, metrics, Some(hints))
    }

    fn build(
        name: String,
        members: Vec<Arc<dyn Storage>>,
        write_quorum: usize,
        metrics: Arc<StorageMetrics>,
        hints: Option<&std::path::Path>,
    ) -> Result<Arc<Self>> {
        let config = |message: String| {
            Err(Error::new(ErrorKind::Config, message).with_backend(name.as_str()).with_operation("open"))
        };
        if members.is_empty() {
            return config(
                "a redundant set needs at least one member backend; list them in the policy".into(),
            );
        }
        if write_quorum == 0 || write_quorum > members.len() {
            return config(format!(
                "write_quorum is {write_quorum} but must be between 1 and the number of copies ({}); \
                 fix `write_quorum` in the Redundant policy",
                members.len()
            ));
        }
        for (i, member) in members.iter().enumerate() {
            if members[..i].iter().any(|m| m.name() == member.name()) {
                return config(format!(
                    "member `{}` is listed twice; each copy must live on a different backend",
                    member.name()
                ));
            }
        }
        let capabilities = members.iter().map(|m| m.capabilities()).fold(
            Capabilities {
                atomic_batch: true,
                range_read: true,
                rename: true,
                persistent: false,
                shared: false,
                conditional_put: true,
                streaming: true,
                partial_write: false,
            },
            |acc, c| Capabilities {
                atomic_batch: acc.atomic_batch && c.atomic_batch,
                range_read: acc.range_read && c.range_read,
                rename: acc.rename && c.rename,
                persistent: acc.persistent || c.persistent,
                shared: acc.shared || c.shared,
                conditional_put: acc.conditional_put && c.conditional_put,
                streaming: acc.streaming && c.streaming,
                // Patches are rewrites of the whole value (see `patch` below).
                partial_write: false,
            },
        );
        let clock = RevisionClock::default();
        let keys = match hints {
            None => KeyTable::new(members.len()),
            Some(path) => {
                let names: Vec<String> = members.iter().map(|m| m.name().to_owned()).collect();
                let (keys, newest) =
                    KeyTable::open(path, &names).map_err(|e| e.with_backend(name.as_str()))?;
                clock.observe(newest);
                keys
            }
        };
        Ok(Arc::new(RedundantStorage {
            shared: Arc::new(Shared {
                name,
                members,
                quorum: write_quorum,
                metrics,
                clock,
                keys,
                capabilities,
            }),
        }))
    }

    /// The members, in preference order.
    pub fn members(&self) -> &[Arc<dyn Storage>] {
        &self.shared.members
    }

    /// How many members must acknowledge a write.
    pub fn write_quorum(&self) -> usize {
        self.shared.quorum
    }

    /// How many keys some member lags behind on (the size of the hint set).
    pub fn lagging_keys(&self) -> usize {
        self.shared.keys.lagging_keys().len()
    }

    /// Brings lagging, missing and stale copies in line; see
    /// [`ScrubReport`]. Fails only when no member could be listed.
    pub async fn scrub_once(&self) -> Result<ScrubReport> {
        self.shared.scrub_once().await
    }

    /// Runs [`scrub_once`](Self::scrub_once) every `interval` (at least
    /// 1 ms) in a background task that holds only a weak reference: the task
    /// ends once the set is dropped. Errors are logged, not fatal.
    pub fn spawn_scrubber(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(store) = weak.upgrade() else { break };
                match store.scrub_once().await {
                    Ok(report) if report.repairs > 0 || report.still_lagging > 0 || report.failures > 0 => {
                        tracing::info!(
                            set = %store.shared.name,
                            repairs = report.repairs,
                            still_lagging = report.still_lagging,
                            failures = report.failures,
                            "scrub finished"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(set = %store.shared.name, error = %e, "scrub failed; retrying later")
                    }
                }
            }
        })
    }
}

/// Members paired with what went wrong with each.
type MemberErrors = Vec<(usize, Error)>;

/// What a read found: each member's replica, the errors of those that did
/// not answer, the hint used and the resolved state.
struct Located {
    replicas: Vec<Replica>,
    errors: MemberErrors,
    hint: Option<hint::Hint>,
    resolved: Resolved,
}

impl Shared {
    fn unhealthy(&self, member: usize) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            "the member is marked unhealthy and is skipped until a probe finds it reachable",
        )
        .with_backend(self.members[member].name())
        .retryable(true)
    }

    fn not_found(&self, key: &Key, op: &'static str) -> Error {
        Error::not_found(key.as_str()).with_backend(self.name.as_str()).with_operation(op)
    }

    /// The error of a read whose current copy may be on unreachable members.
    fn unknown_error(&self, key: &Key, op: &'static str, errors: &[(usize, Error)]) -> Error {
        let details: Vec<String> =
            errors.iter().map(|(m, e)| format!("`{}`: {}", self.members[*m].name(), e.message())).collect();
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the members that may hold the current copy are unreachable ({}) and the reachable ones \
                 hold only older copies; retry once they are back",
                details.join("; ")
            ),
        )
        .with_key(key.as_str())
        .with_backend(self.name.as_str())
        .with_operation(op)
        .retryable(true)
    }

    /// The healthy members, and the others with why they are skipped; an
    /// error (nothing written) when they are fewer than the quorum.
    fn targets(&self, op: &'static str, key: &str) -> Result<(Vec<usize>, MemberErrors)> {
        let mut healthy = Vec::new();
        let mut skipped = Vec::new();
        for (m, member) in self.members.iter().enumerate() {
            if member.is_healthy() {
                healthy.push(m);
            } else {
                skipped.push((m, self.unhealthy(m)));
            }
        }
        if healthy.len() < self.quorum {
            let down: Vec<&str> = skipped.iter().map(|(m, _)| self.members[*m].name()).collect();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "only {} of {} members are healthy (down: {}) and a write needs {}; nothing was written, \
                     retry once a member is back",
                    healthy.len(),
                    self.members.len(),
                    down.join(", "),
                    self.quorum
                ),
            )
            .with_key(key)
            .with_backend(self.name.as_str())
            .with_operation(op)
            .retryable(true));
        }
        Ok((healthy, skipped))
    }

    /// Every member's replica of `key` (unhealthy members are not asked).
    async fn observe(&self, key: &Key) -> (Vec<Replica>, MemberErrors) {
        let answers = join_all(self.members.iter().enumerate().map(|(m, member)| async move {
            if !member.is_healthy() {
                return Err(self.unhealthy(m));
            }
            member.stat(key).await
        }))
        .await;
        let mut replicas = Vec::with_capacity(answers.len());
        let mut errors = Vec::new();
        for (m, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(meta) => {
                    self.clock.observe(revision::revision(&meta.metadata));
                    replicas.push(Replica::Present(meta));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => replicas.push(Replica::Absent),
                Err(e) => {
                    replicas.push(Replica::Unreachable);
                    errors.push((m, e));
                }
            }
        }
        (replicas, errors)
    }

    /// Resolves the current state of `key`, starting a read-repair if some
    /// member's copy is missing or stale.
    async fn locate(self: &Arc<Self>, key: &Key) -> Located {
        let hint = self.keys.hint(key);
        let (replicas, errors) = self.observe(key).await;
        let resolved = resolve(&replicas, hint.as_ref());
        if replicas.iter().any(|r| resolved.matches(r) == Some(false)) {
            self.schedule_repair(key);
        }
        Located { replicas, errors, hint, resolved }
    }

    /// Repairs `key` in the background, unless a repair or write of it is
    /// running (it is then rechecked once they end).
    fn schedule_repair(self: &Arc<Self>, key: &Key) {
        if let Some(guard) = self.keys.try_enter_repair(key) {
            let shared = self.clone();
            tokio::spawn(async move { shared.repair_guarded(guard).await });
        }
    }

    /// Reads `key` with `fetch` from the member holding the current copy,
    /// falling back to the next candidate if that member fails meanwhile.
    async fn fetch<T, F>(self: &Arc<Self>, key: &Key, op: &'static str, fetch: F) -> Result<T>
    where
        F: for<'a> Fn(&'a dyn Storage, &'a Key) -> BoxFuture<'a, Result<T>>,
    {
        let Located { mut replicas, mut errors, hint, mut resolved } = self.locate(key).await;
        for _ in 0..=self.members.len() {
            match resolved {
                Resolved::Present { member, .. } => match fetch(&*self.members[member], key).await {
                    Ok(value) => return Ok(value),
                    Err(e) if e.kind() == ErrorKind::NotFound => replicas[member] = Replica::Absent,
                    Err(e) if e.kind() == ErrorKind::Unavailable => {
                        replicas[member] = Replica::Unreachable;
                        errors.push((member, e));
                    }
                    Err(e) => return Err(e),
                },
                Resolved::Absent { .. } => return Err(self.not_found(key, op)),
                Resolved::Unknown => return Err(self.unknown_error(key, op, &errors)),
            }
            resolved = resolve(&replicas, hint.as_ref());
        }
        Err(self.unknown_error(key, op, &errors))
    }
}

#[async_trait]
impl Storage for RedundantStorage {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.capabilities
    }

    fn is_healthy(&self) -> bool {
        self.shared.members.iter().filter(|m| m.is_healthy()).count() >= self.shared.quorum
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.shared.fetch(key, "get", |member, key| member.get(key)).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.shared.fetch(key, "get_range", move |member, key| member.get_range(key, range.clone())).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.shared.put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.shared.delete(key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let located = self.shared.locate(key).await;
        match located.resolved {
            Resolved::Present { meta, .. } => Ok(revision::public_meta(meta)),
            Resolved::Absent { .. } => Err(self.shared.not_found(key, "stat")),
            Resolved::Unknown => Err(self.shared.unknown_error(key, "stat", &located.errors)),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.shared.list(options).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        self.shared.batch(ops).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.shared.fetch(key, "read", move |member, key| member.read(key, range.clone())).await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        writer::RedundantWriter::open(&self.shared, key, options).await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.shared.rename(from, to).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        self.shared.set_metadata(key, changes, condition).await
    }

    async fn sync(&self) -> Result<()> {
        self.shared.sync().await
    }
}
