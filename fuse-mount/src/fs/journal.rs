//! Group commit of small changes: the write-behind journal.
//!
//! Every store commit of the local backend costs one fsync, so a file
//! system that committed each `create`, `unlink`, `mkdir` or small-file
//! `close` on its own would be bound to a few hundred operations a second.
//! The journal queues those small changes (puts of at most
//! [`MAX_VALUE`] bytes and deletes) in order and a single committer task
//! writes whatever has queued up as one atomic [`Storage::batch`] per
//! principal and route: one fsync for many operations.
//!
//! Invariants:
//! - Until a change is committed, [`Journal::pending`] answers for its key,
//!   and the file system layer consults it before the store, so every
//!   reader in the mount sees the change at once (read-your-writes).
//! - Changes commit in the order they were queued. A later change to a key
//!   whose earlier change is still queued replaces it in place (same
//!   principal only); a change already being committed is never touched.
//! - [`Journal::flush`] waits until everything queued before it is
//!   committed (or has failed), so nothing ever overtakes a queued change to
//!   the same key: renames and streamed writes go through it.
//!   [`Journal::failure`] then tells one principal what of its changes did
//!   not reach the store: `fsync` reports it. A flush is bounded during an
//!   outage: once a commit attempt made after it started fails because the
//!   backend is unavailable (each attempt is bounded by the backend's
//!   timeout and retries), it fails with that error, and the changes stay
//!   queued.
//! - A failed batch is retried one change at a time. A change the store
//!   refuses for good (access revoked by a reload, an invalid key) is
//!   dropped, logged, and reported to its principal once. A change that
//!   fails because the backend is unavailable is retried with backoff and
//!   blocks the queue, so nothing acknowledged is lost while the daemon
//!   runs.
//! - A full device is not an outage and is never retried in a loop: a put
//!   that fails for want of space is *held* (still pending, so readers see
//!   it, and reported as `ENOSPC` to its principal at every `fsync` until it
//!   is saved), and while any put is held, new puts are refused at once
//!   with `ENOSPC`, so writers learn that the store is full when they
//!   create or close a file. Deletes go on (they free space); held puts are
//!   tried again after a delete commits and every [`PROBE`] otherwise, and
//!   commit as soon as there is room, without a restart. A later change to
//!   a held key replaces it.
//! - A put a quota could refuse (of a key a quota counts, new or larger
//!   than what it replaces) never enters the journal: it is made at once
//!   (after the queue is flushed), so a write past the quota is refused to
//!   its writer (`EDQUOT` at `close` or `creat`), never dropped after it
//!   was acknowledged. Puts that grow nothing (a directory's new times)
//!   and deletes (they only free room) are queued; a quota check that
//!   fails flushes the queue and asks again.
//! - [`Journal::close`] (unmount) commits what it can within a grace period
//!   and logs, key by key, every change it could not commit.
//! - Memory is bounded: writers wait while more than
//!   [`JournalLimits::max_bytes`] are queued.
//!
//! What is not guaranteed: a queued change is lost if the daemon is killed
//! (SIGKILL, power loss) before it commits, as a local file system loses
//! what was not fsynced. Commits follow within milliseconds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tierfs_core::access::Principal;
use tierfs_core::{
    BatchOp, Error, ErrorKind, Key, Metadata, ObjectMeta, PutOptions, Session, Storage, StorageManager,
};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Largest value the journal takes (the local backend keeps values up to
/// this size inside its database, so a batch of them costs one fsync).
pub const MAX_VALUE: usize = 256 * 1024;

/// How often puts held for want of space are tried again when no delete
/// has freed space meanwhile.
pub const PROBE: Duration = Duration::from_secs(1);

/// How long the committer lets changes gather before it commits them,
/// unless someone waits for them (`fsync`, a rename, unmount) or the queue
/// is large: a program creating files one after another then pays one
/// commit for a window's files instead of one for every few, and a file's
/// creation, its content and its directory's new times, queued within the
/// window, are one put each.
pub const GATHER: Duration = Duration::from_millis(5);

/// Bounds of the queue.
#[derive(Debug, Clone, Copy)]
pub struct JournalLimits {
    /// Writers wait while more bytes than this are queued.
    pub max_bytes: usize,
    /// Most changes in one batch.
    pub max_batch: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits { max_bytes: 32 << 20, max_batch: 4096 }
    }
}

/// A queued change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Store `value` with `metadata`.
    Put {
        /// The value.
        value: Bytes,
        /// Its metadata.
        metadata: Metadata,
        /// When it was queued (reported as the modification time).
        modified: SystemTime,
    },
    /// Remove the key.
    Delete,
}

impl Change {
    fn weight(&self, key: &str) -> usize {
        let meta = |m: &Metadata| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        key.len()
            + 64
            + match self {
                Change::Put { value, metadata, .. } => value.len() + meta(metadata),
                Change::Delete => 0,
            }
    }
}

#[derive(Debug, Clone)]
struct Queued {
    seq: u64,
    key: Key,
    change: Change,
    session: Session,
}

#[derive(Debug, Clone)]
struct Latest {
    seq: u64,
    change: Change,
}

/// A change dropped for good, not yet reported to its principal.
#[derive(Debug)]
struct Dropped {
    principal: Principal,
    key: String,
    error: Error,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    queue: VecDeque<Queued>,
    /// When the queue is to be committed at the latest: [`GATHER`] after
    /// its oldest change was queued (`None` while it is empty).
    commit_at: Option<Instant>,
    /// Callers waiting for commits: while any does, nothing gathers.
    waiters: usize,
    /// The newest queued, in-flight or held change of each key.
    latest: BTreeMap<String, Latest>,
    bytes: usize,
    /// Puts that failed for want of space, waiting for room, by key.
    held: BTreeMap<String, Queued>,
    /// Changes dropped after failing for good, not yet reported.
    dropped: Vec<Dropped>,
    /// When held puts are tried again at the latest.
    probe_at: Option<Instant>,
    /// After this instant (unmount's grace period), an unavailable backend
    /// is no longer waited for.
    deadline: Option<Instant>,
    /// The last failure of a commit attempt because the backend was
    /// unavailable, until a commit succeeds.
    outage: Option<Error>,
    closed: bool,
}

/// The journal; see the module documentation.
#[derive(Debug)]
pub struct Journal {
    manager: StorageManager,
    limits: JournalLimits,
    state: Mutex<State>,
    work: Notify,
    room: Notify,
    committed: watch::Sender<u64>,
    /// Counts commit attempts that failed because the backend was
    /// unavailable, so that a flush in an outage ends.
    outages: watch::Sender<u64>,
}

/// Counts a caller waiting for commits (see [`State::waiters`]) while it
/// lives, and wakes the committer so that it stops gathering.
struct Waiting<'a>(&'a Journal);

impl<'a> Waiting<'a> {
    fn new(journal: &'a Journal) -> Self {
        journal.state.lock().waiters += 1;
        journal.work.notify_one();
        Waiting(journal)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.state.lock().waiters -= 1;
    }
}

/// The error of a put refused at once because the store is full.
fn store_full(key: &str, held: &str) -> Error {
    Error::io(
        format!(
            "the store is full (`{held}` is waiting for space): no new value is taken until space \
             is freed; delete something"
        ),
        std::io::Error::from_raw_os_error(libc::ENOSPC),
    )
    .with_key(key)
}

/// The error of a put held for want of space.
fn not_saved_yet(key: &str) -> Error {
    Error::io(
        "not saved yet: the store is full; the change is kept and saved as soon as space is freed",
        std::io::Error::from_raw_os_error(libc::ENOSPC),
    )
    .with_key(key)
}

impl Journal {
    /// A journal committing through `manager`'s sessions; starts its
    /// committer task on the current tokio runtime.
    pub fn start(manager: StorageManager, limits: JournalLimits) -> Arc<Journal> {
        let (committed, _) = watch::channel(0);
        let (outages, _) = watch::channel(0);
        let journal = Arc::new(Journal {
            manager,
            limits,
            state: Mutex::new(State { next_seq: 1, ..State::default() }),
            work: Notify::new(),
            room: Notify::new(),
            committed,
            outages,
        });
        tokio::spawn(journal.clone().run());
        journal
    }

    /// The pending change of `key`, if any.
    pub fn pending(&self, key: &str) -> Option<Change> {
        self.state.lock().latest.get(key).map(|l| l.change.clone())
    }

    /// Every pending change of a key starting with `prefix`, in key order.
    pub fn pending_under(&self, prefix: &str) -> Vec<(String, Change)> {
        let state = self.state.lock();
        state
            .latest
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, l)| (k.clone(), l.change.clone()))
            .collect()
    }

    /// Whether nothing is queued, being committed or held.
    pub fn is_idle(&self) -> bool {
        self.state.lock().latest.is_empty()
    }

    /// Whether a put of `key` is held for want of space.
    pub fn is_held(&self, key: &str) -> bool {
        self.state.lock().held.contains_key(key)
    }

    /// The `stat` answer for a pending put.
    pub fn meta_of(key: &Key, change: &Change) -> Option<ObjectMeta> {
        match change {
            Change::Put { value, metadata, modified } => Some(ObjectMeta {
                key: key.clone(),
                size: value.len() as u64,
                modified: *modified,
                version: "pending".into(),
                metadata: metadata.clone(),
            }),
            Change::Delete => None,
        }
    }

    /// Queues `change` of `key` on behalf of `session`; returns at once
    /// unless the queue is full. A put is refused with an out-of-space
    /// error while puts are held for want of space.
    pub async fn enqueue(&self, session: &Session, key: Key, change: Change) -> Result<(), Error> {
        let weight = change.weight(&key);
        if matches!(change, Change::Put { .. }) && !self.state.lock().held.is_empty() {
            // Deletes queued meanwhile may have freed space: let them
            // commit (the first flush) and the held puts be tried again
            // (the second) before refusing.
            self.flush().await?;
            self.flush().await?;
        }
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.state.lock();
                if matches!(change, Change::Put { .. }) {
                    if let Some(held) = state.held.keys().next() {
                        return Err(store_full(key.as_str(), held));
                    }
                }
                if state.bytes + weight <= self.limits.max_bytes || state.latest.is_empty() {
                    self.push(&mut state, session, key, change, weight);
                    return Ok(());
                }
            }
            self.work.notify_one();
            room.await;
        }
    }

    fn push(&self, state: &mut State, session: &Session, key: Key, change: Change, weight: usize) {
        if let Some(held) = state.held.remove(key.as_str()) {
            // The newer change replaces the held put; its principal, if
            // another, is told the put was not saved.
            state.bytes = state.bytes.saturating_sub(held.change.weight(&held.key));
            state.latest.remove(key.as_str());
            if held.session.principal() != session.principal() {
                state.dropped.push(Dropped {
                    principal: held.session.principal().clone(),
                    key: held.key.as_str().to_owned(),
                    error: Error::io(
                        "not saved: the store was full, and another's change replaced it",
                        std::io::Error::from_raw_os_error(libc::ENOSPC),
                    )
                    .with_key(key.as_str()),
                });
            }
        }
        let front = state.queue.front().map(|q| q.seq);
        if let (Some(latest), Some(front)) = (state.latest.get(key.as_str()), front) {
            let seq = latest.seq;
            if seq >= front {
                let index = (seq - front) as usize;
                let queued = &mut state.queue[index];
                if queued.session.principal() == session.principal() {
                    let old = queued.change.weight(&key);
                    queued.change = change.clone();
                    state.bytes = state.bytes + weight - old;
                    state.latest.insert(key.into_string(), Latest { seq, change });
                    return;
                }
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.bytes += weight;
        state.latest.insert(key.as_str().to_owned(), Latest { seq, change: change.clone() });
        state.queue.push_back(Queued { seq, key, change, session: session.clone() });
        // The committer is told when the queue starts (it then gathers
        // until GATHER has passed) and when gathering longer would not pay.
        if state.commit_at.is_none() {
            state.commit_at = Some(Instant::now() + GATHER);
            self.work.notify_one();
        } else if self.is_urgent(state) {
            self.work.notify_one();
        }
    }

    /// Whether the queue should be committed without gathering more.
    fn is_urgent(&self, state: &State) -> bool {
        state.waiters > 0
            || state.closed
            || state.deadline.is_some()
            || state.queue.len() >= self.limits.max_batch
            || state.bytes >= self.limits.max_bytes / 2
    }

    /// Waits until every change queued so far is committed, dropped or
    /// held. Fails if the committer stopped, or, in an outage, once a commit
    /// attempt made after this call started has failed because the backend
    /// is unavailable: the changes then stay queued and are retried.
    pub async fn flush(&self) -> Result<(), Error> {
        let target = self.state.lock().next_seq - 1;
        let mut outages = self.outages.subscribe();
        outages.mark_unchanged();
        tokio::select! {
            done = self.wait_committed(target) => done,
            _ = outages.changed() => match *self.committed.borrow() >= target {
                true => Ok(()),
                false => Err(self.outage_error()),
            },
        }
    }

    /// Waits, however long an outage lasts, until every change up to
    /// `target` is committed, dropped or held.
    async fn wait_committed(&self, target: u64) -> Result<(), Error> {
        let mut rx = self.committed.subscribe();
        if *rx.borrow() >= target {
            return Ok(());
        }
        let _waiting = Waiting::new(self);
        rx.wait_for(|&c| c >= target).await.map_err(|_| {
            Error::new(ErrorKind::Unavailable, "the journal committer stopped; remount to continue")
        })?;
        Ok(())
    }

    /// The error of a flush that ends in an outage.
    fn outage_error(&self) -> Error {
        let cause = self.state.lock().outage.clone();
        let message = "the store did not answer: queued changes stay in the daemon and are \
                       committed when it is back (unmount waits for them at most its grace period)";
        match cause {
            Some(cause) => {
                Error::new(ErrorKind::Unavailable, format!("{message}: {cause}")).with_source(cause)
            }
            None => Error::new(ErrorKind::Unavailable, message),
        }
    }

    /// What keeps `principal`'s changes (of `key` only, if given) from the
    /// store: a change dropped for good (reported once), else a put held
    /// for want of space (reported until it is saved).
    pub fn failure(&self, principal: &Principal, key: Option<&str>) -> Option<Error> {
        let mut state = self.state.lock();
        let mine = |p: &Principal, k: &str| p == principal && key.is_none_or(|key| key == k);
        if let Some(i) = state.dropped.iter().position(|d| mine(&d.principal, &d.key)) {
            let first = state.dropped.remove(i);
            state.dropped.retain(|d| !mine(&d.principal, &d.key));
            let kind = first.error.kind();
            return Some(
                Error::new(kind, format!("a change could not be written and was dropped: {}", first.error))
                    .with_source(first.error)
                    .with_key(first.key),
            );
        }
        let held = state.held.values().find(|q| mine(q.session.principal(), q.key.as_str()))?;
        Some(not_saved_yet(held.key.as_str()))
    }

    /// Commits everything it can within `grace`, then stops the committer.
    /// Fails, after logging each of them, if changes could not be committed.
    pub async fn close(&self, grace: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + grace;
        self.state.lock().deadline = Some(deadline);
        loop {
            // An unavailable backend is no longer waited for past the
            // deadline, so this wait is bounded too.
            let target = self.state.lock().next_seq - 1;
            self.wait_committed(target).await?;
            if self.state.lock().held.is_empty() || Instant::now() >= deadline {
                break;
            }
            self.requeue_held(true);
            let target = self.state.lock().next_seq - 1;
            self.wait_committed(target).await?;
            if self.state.lock().held.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200).min(deadline - Instant::now())).await;
        }
        let mut state = self.state.lock();
        state.closed = true;
        self.work.notify_one();
        let mut lost = 0;
        for q in std::mem::take(&mut state.held).into_values() {
            tracing::error!(key = %q.key, principal = %q.session.principal(), "not committed at unmount: the store is full");
            lost += 1;
        }
        for d in state.dropped.drain(..) {
            tracing::error!(key = %d.key, principal = %d.principal, error = %d.error, "not committed: dropped");
            lost += 1;
        }
        match lost {
            0 => Ok(()),
            n => Err(Error::io(
                format!("{n} change(s) could not be committed; each is named in the log"),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            )),
        }
    }

    /// Queues held puts to be tried again: `all`, or (a probe) the oldest
    /// only, so a store still full costs one failed write per probe. They
    /// stay held (so new puts are still refused) until they commit. Each
    /// gets a new place at the end (it is the newest change of its key: a
    /// newer one replaces a held put), so a flush waits for it.
    fn requeue_held(&self, all: bool) {
        let mut state = self.state.lock();
        let mut held: Vec<Queued> = state.held.values().cloned().collect();
        if held.is_empty() {
            return;
        }
        held.sort_by_key(|q| q.seq);
        if !all {
            held.truncate(1);
        }
        for mut q in held {
            q.seq = state.next_seq;
            state.next_seq += 1;
            if let Some(latest) = state.latest.get_mut(q.key.as_str()) {
                latest.seq = q.seq;
            }
            if let Some(entry) = state.held.get_mut(q.key.as_str()) {
                entry.seq = q.seq;
            }
            state.queue.push_back(q);
        }
        state.probe_at = None;
        drop(state);
        self.work.notify_one();
    }

    async fn run(self: Arc<Self>) {
        loop {
            let batch: Vec<Queued> = loop {
                let work = self.work.notified();
                tokio::pin!(work);
                work.as_mut().enable();
                let (probe_at, gather_until) = {
                    let mut state = self.state.lock();
                    let due = state.commit_at.is_none_or(|at| Instant::now() >= at);
                    if !state.queue.is_empty() && (due || self.is_urgent(&state)) {
                        let n = state.queue.len().min(self.limits.max_batch);
                        let batch = state.queue.drain(..n).collect();
                        // What is left over (past a batch's size) is due now.
                        state.commit_at = (!state.queue.is_empty()).then(Instant::now);
                        break batch;
                    }
                    if state.queue.is_empty() && state.closed {
                        return;
                    }
                    (state.probe_at, state.commit_at.filter(|_| !state.queue.is_empty()))
                };
                match (probe_at, gather_until) {
                    (_, Some(until)) => {
                        let _ = tokio::time::timeout_at(until, work).await;
                    }
                    (Some(at), None) => {
                        if tokio::time::timeout_at(at, work).await.is_err() {
                            self.requeue_held(false);
                        }
                    }
                    (None, None) => work.await,
                }
            };
            let last = batch.iter().map(|q| q.seq).max().unwrap_or(0);
            let outcome = self.commit(&batch).await;
            let mut saved_held = false;
            {
                let mut state = self.state.lock();
                for (i, q) in batch.into_iter().enumerate() {
                    let current = state.latest.get(q.key.as_str()).is_some_and(|l| l.seq == q.seq);
                    let was_held = state.held.get(q.key.as_str()).is_some_and(|h| h.seq == q.seq);
                    match &outcome.failed[i] {
                        // A newer change of the key is queued: it decides.
                        Some(e) if !current => {
                            tracing::debug!(key = %q.key, error = %e, "a change failed, and a newer one replaces it");
                        }
                        Some(e) if e.is_out_of_space() => {
                            if state.held.is_empty() {
                                tracing::warn!(key = %q.key, error = %e, "the store is full; holding changes until space is freed");
                            }
                            state.probe_at.get_or_insert(Instant::now() + PROBE);
                            state.held.insert(q.key.as_str().to_owned(), q);
                            continue;
                        }
                        Some(e) => {
                            tracing::error!(key = %q.key, principal = %q.session.principal(), error = %e, "a queued change was dropped");
                            state.dropped.push(Dropped {
                                principal: q.session.principal().clone(),
                                key: q.key.as_str().to_owned(),
                                error: e.clone(),
                            });
                        }
                        None => saved_held |= was_held,
                    }
                    if was_held {
                        state.held.remove(q.key.as_str());
                    }
                    if current {
                        state.latest.remove(q.key.as_str());
                    }
                    state.bytes = state.bytes.saturating_sub(q.change.weight(&q.key));
                }
            }
            // Requeued before the commit is announced, so that a flush
            // after this one waits for the held puts too.
            if outcome.freed || saved_held {
                self.requeue_held(true);
            }
            self.committed.send_if_modified(|c| {
                let before = *c;
                *c = before.max(last);
                *c != before
            });
            self.room.notify_waiters();
        }
    }

    /// Writes `batch` in order: one store batch per run of changes with the
    /// same principal and route.
    async fn commit(&self, batch: &[Queued]) -> Outcome {
        let mut outcome = Outcome { failed: vec![None; batch.len()], freed: false, full: None };
        let mut start = 0;
        while start < batch.len() {
            let route = self.manager.route_of(batch[start].key.as_str());
            let (atomic_batch, route) = (route.atomic_batch, route.prefix);
            let principal = batch[start].session.principal();
            let mut end = start + 1;
            while end < batch.len()
                && batch[end].session.principal() == principal
                && self.manager.route_of(batch[end].key.as_str()).prefix == route
            {
                end += 1;
            }
            let run = &batch[start..end];
            let ops: Vec<BatchOp> = run
                .iter()
                .map(|q| match &q.change {
                    Change::Put { value, metadata, .. } => BatchOp::Put {
                        key: q.key.clone(),
                        value: value.clone(),
                        metadata: metadata.clone(),
                        if_not_exists: false,
                    },
                    Change::Delete => BatchOp::delete(q.key.clone()),
                })
                .collect();
            // Routes without atomic batches (S3) refuse them: go one by one.
            let result = if ops.len() == 1 || !atomic_batch {
                Err(None)
            } else {
                run[0].session.batch(ops).await.map_err(Some)
            };
            match result {
                Ok(_) => outcome.freed |= run.iter().any(|q| matches!(q.change, Change::Delete)),
                Err(e) => {
                    if let Some(e) = e {
                        tracing::debug!(error = %e, changes = run.len(), "batch failed; committing one at a time");
                    }
                    for (i, q) in run.iter().enumerate() {
                        // Once the device is full, the puts that follow
                        // are held without each failing (and costing a
                        // database reopen) again; deletes still go.
                        if let (Some(full), Change::Put { .. }) = (&outcome.full, &q.change) {
                            outcome.failed[start + i] = Some(full.clone());
                            continue;
                        }
                        match self.commit_one(q).await {
                            Ok(()) => outcome.freed |= matches!(q.change, Change::Delete),
                            Err(e) => {
                                if e.is_out_of_space() {
                                    outcome.full.get_or_insert(e.clone());
                                }
                                outcome.failed[start + i] = Some(e);
                            }
                        }
                    }
                }
            }
            start = end;
        }
        outcome
    }

    /// One change, retried with backoff while the backend is unavailable
    /// (not while its device is full, and not past unmount's deadline).
    async fn commit_one(&self, q: &Queued) -> Result<(), Error> {
        let mut delay = Duration::from_millis(50);
        loop {
            let result = match &q.change {
                Change::Put { value, metadata, .. } => q
                    .session
                    .put(&q.key, value.clone(), PutOptions::with_metadata(metadata.clone()))
                    .await
                    .map(drop),
                Change::Delete => q.session.delete(&q.key).await,
            };
            match result {
                Err(e) if e.kind() == ErrorKind::Unavailable && !e.is_out_of_space() => {
                    let deadline = {
                        let mut state = self.state.lock();
                        state.outage = Some(e.clone());
                        state.deadline
                    };
                    self.outages.send_modify(|n| *n += 1);
                    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        return Err(e);
                    }
                    tracing::warn!(key = %q.key, error = %e, "backend unavailable; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => {
                    if other.is_ok() {
                        self.state.lock().outage = None;
                    }
                    return other;
                }
            }
        }
    }
}

/// What became of a batch: the error of each change that failed, and
/// whether a delete committed (space may have been freed).
struct Outcome {
    failed: Vec<Option<Error>>,
    freed: bool,
    /// The first out-of-space failure.
    full: Option<Error>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierfs_core::Config;

    async fn manager() -> StorageManager {
        let config = Config::parse("[backends.m]\ntype = \"memory\"\n", None).unwrap();
        StorageManager::open(config).await.unwrap()
    }

    fn put(v: &'static [u8]) -> Change {
        Change::Put { value: Bytes::from_static(v), metadata: Metadata::new(), modified: SystemTime::now() }
    }

    #[tokio::test]
    async fn pending_changes_answer_until_committed() {
        let m = manager().await;
        let s = m.session("alice");
        let j = Journal::start(m.clone(), JournalLimits::default());
        let k = Key::new("a/b").unwrap();
        j.enqueue(&s, k.clone(), put(b"one")).await.unwrap();
        j.enqueue(&s, Key::new("a/c").unwrap(), put(b"two")).await.unwrap();
        j.enqueue(&s, k.clone(), Change::Delete).await.unwrap();
        // Whatever is still pending (the committer may have run) is the
        // newest change of its key: a/b deleted, a/c put.
        for (k, change) in j.pending_under("a/") {
            match (k.as_str(), change) {
                ("a/b", Change::Delete) => {}
                ("a/c", Change::Put { value, .. }) => assert_eq!(&value[..], b"two"),
                (k, change) => panic!("{k} is pending as {change:?}"),
            }
        }
        j.flush().await.unwrap();
        assert!(j.is_idle());
        assert!(s.stat(&k).await.is_err());
        assert_eq!(&s.get(&Key::new("a/c").unwrap()).await.unwrap()[..], b"two");
    }

    /// Batches the memory backend `m` of `m` was given.
    fn batches(m: &StorageManager) -> u64 {
        m.metrics().backends.get("m").and_then(|ops| ops.get("batch")).map_or(0, |s| s.count)
    }

    #[tokio::test(start_paused = true)]
    async fn changes_gather_unless_someone_waits() {
        let m = manager().await;
        let s = m.session("alice");
        let j = Journal::start(m.clone(), JournalLimits::default());
        let file = Key::new("d/f").unwrap();
        // A creation, the directory's times, then the content, within the window.
        j.enqueue(&s, file.clone(), put(b"")).await.unwrap();
        j.enqueue(&s, Key::new("d").unwrap(), put(b"")).await.unwrap();
        tokio::time::sleep(GATHER / 5).await;
        j.enqueue(&s, file.clone(), put(b"content")).await.unwrap();
        assert_eq!(batches(&m), 0, "committed before the window ended");
        tokio::time::sleep(GATHER * 2).await;
        assert!(j.is_idle());
        assert_eq!(batches(&m), 1, "the window's changes were not one batch");
        assert_eq!(&s.get(&file).await.unwrap()[..], b"content");
        assert_eq!(m.metrics().backends["m"]["batch"].bytes_in, 7, "the replaced creation was stored too");

        // A flush does not wait for the window.
        let started = Instant::now();
        j.enqueue(&s, Key::new("d/g").unwrap(), put(b"g")).await.unwrap();
        j.flush().await.unwrap();
        assert!(started.elapsed() < GATHER, "a flush waited {:?} for the window", started.elapsed());
        assert_eq!(&s.get(&Key::new("d/g").unwrap()).await.unwrap()[..], b"g");
    }

    #[tokio::test]
    async fn order_is_kept_across_batches() {
        let m = manager().await;
        let s = m.session("alice");
        let j = Journal::start(m.clone(), JournalLimits { max_bytes: 1 << 20, max_batch: 3 });
        let k = Key::new("k").unwrap();
        for i in 0..50u8 {
            let value = Bytes::from(vec![i]);
            j.enqueue(
                &s,
                k.clone(),
                Change::Put { value, metadata: Metadata::new(), modified: SystemTime::now() },
            )
            .await
            .unwrap();
            j.enqueue(&s, Key::new(format!("other{i}")).unwrap(), put(b"x")).await.unwrap();
        }
        j.flush().await.unwrap();
        assert_eq!(&s.get(&k).await.unwrap()[..], &[49]);
        j.close(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test]
    async fn a_flush_in_an_outage_ends_and_the_changes_stay_queued() {
        let plugin = Arc::new(tierfs_tests::faults::FaultyPlugin::default());
        let registry = Arc::new(tierfs_core::StorageRegistry::with_builtins());
        registry.register(plugin.clone()).unwrap();
        let config =
            Config::parse("[backends.f]\ntype = \"faulty\"\n[health]\nretries = 0\nprobe_ms = 10\n", None)
                .unwrap();
        let m = StorageManager::with_registry(config, registry).await.unwrap();
        let faults = plugin.handle(0);
        let s = m.session("alice");
        let j = Journal::start(m.clone(), JournalLimits::default());
        let k = Key::new("k").unwrap();
        faults.set_down(true);
        j.enqueue(&s, k.clone(), put(b"kept")).await.unwrap();
        let e = j.flush().await.expect_err("a flush in an outage reported success");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("did not answer"), "{e}");
        // Kept, still seen, and neither dropped nor reported as lost.
        assert!(matches!(j.pending("k"), Some(Change::Put { .. })));
        assert!(j.failure(&Principal::new("alice"), None).is_none());
        // A second flush in the same outage ends too.
        assert_eq!(j.flush().await.unwrap_err().kind(), ErrorKind::Unavailable);
        faults.set_down(false);
        // Once the manager's prober has seen the backend back, the queued
        // change commits.
        while !m.backend_healthy("f").unwrap() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        j.flush().await.unwrap();
        assert!(j.is_idle());
        assert_eq!(&s.get(&k).await.unwrap()[..], b"kept");
        j.close(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test]
    async fn refused_changes_are_reported_by_flush() {
        let config = Config::parse(
            "[backends.m]\ntype = \"memory\"\n[access]\ndefault = \"none\"\n\
             [[access.rules]]\nprincipal = \"alice\"\nresource = \"ok/\"\nlevel = \"full\"\n",
            None,
        )
        .unwrap();
        let m = StorageManager::open(config).await.unwrap();
        let s = m.session("alice");
        let j = Journal::start(m.clone(), JournalLimits::default());
        j.enqueue(&s, Key::new("ok/1").unwrap(), put(b"1")).await.unwrap();
        j.enqueue(&s, Key::new("no/2").unwrap(), put(b"2")).await.unwrap();
        j.enqueue(&s, Key::new("ok/3").unwrap(), put(b"3")).await.unwrap();
        j.flush().await.unwrap();
        let alice = Principal::new("alice");
        let err = j.failure(&alice, None).expect("the refused change is reported");
        assert!(err.to_string().contains("no/2"), "{err}");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(s.stat(&Key::new("ok/3").unwrap()).await.is_ok());
        // Reported once, and to its principal only.
        assert!(j.failure(&alice, None).is_none());
        j.enqueue(&s, Key::new("no/4").unwrap(), put(b"4")).await.unwrap();
        j.flush().await.unwrap();
        assert!(j.failure(&Principal::new("bob"), None).is_none());
        assert!(j.failure(&alice, Some("no/2")).is_none());
        assert!(j.failure(&alice, Some("no/4")).is_some());
    }
}
