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
//!   committed and reports a change that could not be: `fsync`, renames,
//!   streamed writes and unmount go through it, so nothing ever overtakes
//!   a queued change to the same key.
//! - A failed batch is retried one change at a time; a change the store
//!   refuses for good (access revoked by a reload, an invalid key) is
//!   dropped, logged and reported by the next `flush`; a change that fails
//!   because the backend is unavailable is retried with backoff and blocks
//!   the queue, so nothing acknowledged is lost while the daemon runs.
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
use tierfs_core::{
    BatchOp, Error, ErrorKind, Key, Metadata, ObjectMeta, PutOptions, Session, Storage, StorageManager,
};
use tokio::sync::{watch, Notify};

/// Largest value the journal takes (the local backend keeps values up to
/// this size inside its database, so a batch of them costs one fsync).
pub const MAX_VALUE: usize = 256 * 1024;

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

#[derive(Debug)]
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

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    queue: VecDeque<Queued>,
    /// The newest queued or in-flight change of each key.
    latest: BTreeMap<String, Latest>,
    bytes: usize,
    /// Changes dropped after failing for good, not yet reported by a flush.
    failures: Vec<(u64, String)>,
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
}

impl Journal {
    /// A journal committing through `manager`'s sessions; starts its
    /// committer task on the current tokio runtime.
    pub fn start(manager: StorageManager, limits: JournalLimits) -> Arc<Journal> {
        let (committed, _) = watch::channel(0);
        let journal = Arc::new(Journal {
            manager,
            limits,
            state: Mutex::new(State { next_seq: 1, ..State::default() }),
            work: Notify::new(),
            room: Notify::new(),
            committed,
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

    /// Whether nothing is queued or being committed.
    pub fn is_idle(&self) -> bool {
        self.state.lock().latest.is_empty()
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
    /// unless the queue is full.
    pub async fn enqueue(&self, session: &Session, key: Key, change: Change) {
        let weight = change.weight(&key);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.state.lock();
                if state.bytes + weight <= self.limits.max_bytes || state.latest.is_empty() {
                    self.push(&mut state, session, key, change, weight);
                    return;
                }
            }
            self.work.notify_one();
            room.await;
        }
    }

    fn push(&self, state: &mut State, session: &Session, key: Key, change: Change, weight: usize) {
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
        self.work.notify_one();
    }

    /// Waits until every change queued so far is committed; fails if one
    /// of them was dropped since the last flush.
    pub async fn flush(&self) -> Result<(), Error> {
        let target = {
            let state = self.state.lock();
            state.next_seq - 1
        };
        let mut rx = self.committed.subscribe();
        self.work.notify_one();
        rx.wait_for(|&c| c >= target).await.map_err(|_| {
            Error::new(ErrorKind::Unavailable, "the journal committer stopped; remount to continue")
        })?;
        let mut state = self.state.lock();
        let (reported, kept): (Vec<_>, Vec<_>) =
            state.failures.drain(..).partition(|(seq, _)| *seq <= target);
        state.failures = kept;
        match reported.into_iter().next() {
            None => Ok(()),
            Some((_, message)) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("a queued change could not be written and was dropped: {message}"),
            )),
        }
    }

    /// Commits everything, then stops the committer.
    pub async fn close(&self) -> Result<(), Error> {
        let result = self.flush().await;
        self.state.lock().closed = true;
        self.work.notify_one();
        result
    }

    async fn run(self: Arc<Self>) {
        loop {
            let batch: Vec<Queued> = loop {
                let work = self.work.notified();
                tokio::pin!(work);
                work.as_mut().enable();
                {
                    let mut state = self.state.lock();
                    if !state.queue.is_empty() {
                        let n = state.queue.len().min(self.limits.max_batch);
                        break state.queue.drain(..n).collect();
                    }
                    if state.closed {
                        return;
                    }
                }
                work.await;
            };
            let last = batch.last().map_or(0, |q| q.seq);
            let failures = self.commit(&batch).await;
            {
                let mut state = self.state.lock();
                for q in &batch {
                    if state.latest.get(q.key.as_str()).is_some_and(|l| l.seq == q.seq) {
                        state.latest.remove(q.key.as_str());
                    }
                    state.bytes = state.bytes.saturating_sub(q.change.weight(&q.key));
                }
                state.failures.extend(failures);
            }
            self.committed.send_replace(last);
            self.room.notify_waiters();
        }
    }

    /// Writes `batch` in order: one store batch per run of changes with the
    /// same principal and route. Returns the changes dropped.
    async fn commit(&self, batch: &[Queued]) -> Vec<(u64, String)> {
        let mut failures = Vec::new();
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
            if let Err(e) = result {
                if let Some(e) = e {
                    tracing::debug!(error = %e, changes = run.len(), "batch failed; committing one at a time");
                }
                for q in run {
                    if let Err(e) = self.commit_one(q).await {
                        tracing::error!(key = %q.key, error = %e, "a queued change was dropped");
                        failures.push((q.seq, e.to_string()));
                    }
                }
            }
            start = end;
        }
        failures
    }

    /// One change, retried with backoff while the backend is unavailable.
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
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    let closed = self.state.lock().closed;
                    if closed {
                        return Err(e);
                    }
                    tracing::warn!(key = %q.key, error = %e, "backend unavailable; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
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
        j.enqueue(&s, k.clone(), put(b"one")).await;
        j.enqueue(&s, Key::new("a/c").unwrap(), put(b"two")).await;
        j.enqueue(&s, k.clone(), Change::Delete).await;
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
            .await;
            j.enqueue(&s, Key::new(format!("other{i}")).unwrap(), put(b"x")).await;
        }
        j.flush().await.unwrap();
        assert_eq!(&s.get(&k).await.unwrap()[..], &[49]);
        j.close().await.unwrap();
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
        j.enqueue(&s, Key::new("ok/1").unwrap(), put(b"1")).await;
        j.enqueue(&s, Key::new("no/2").unwrap(), put(b"2")).await;
        j.enqueue(&s, Key::new("ok/3").unwrap(), put(b"3")).await;
        let err = j.flush().await.unwrap_err();
        assert!(err.to_string().contains("no/2"), "{err}");
        assert!(s.stat(&Key::new("ok/3").unwrap()).await.is_ok());
        j.flush().await.unwrap();
    }
}
