//! The write path shared by put, delete, batch, rename and streamed writes:
//! one member operation per healthy member, run concurrently by a spawned
//! supervisor; the caller returns once `write_quorum` of them succeeded and
//! the first member in configured order has answered (so reads, which start
//! there, find the copy), and the rest finish in the background.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::ObjectMeta;

use super::hints::{lock_member, Held, KeyGuard};
use super::Shared;

/// One member's share of a write. It receives, per key of the write,
/// whether the key is still to be written on that member (`false`: a newer
/// write already landed there), and runs with the member's locks held.
pub(super) type MemberOp =
    Box<dyn FnOnce(Vec<bool>) -> BoxFuture<'static, Result<Option<ObjectMeta>>> + Send>;

/// Runs after every member operation finished, with the locks still held,
/// given the members that succeeded.
pub(super) type AfterAll = Box<dyn FnOnce(Vec<usize>) -> BoxFuture<'static, ()> + Send>;

/// A write ready to be sent to the members.
pub(super) struct Replication {
    /// The operation, for errors and logs.
    pub(super) op: &'static str,
    /// The write's revision.
    pub(super) rev: u64,
    /// The keys written, sorted, each with whether its final state is deleted.
    pub(super) writes: Vec<(Key, bool)>,
    /// One guard per key of `writes`, same order.
    pub(super) guards: Vec<KeyGuard>,
    /// The members written to, with their operations.
    pub(super) targets: Vec<(usize, MemberOp)>,
    /// Members left out (unhealthy, or unable to take part), with why.
    pub(super) skipped: Vec<(usize, Error)>,
    /// Locks already held as `[member][key]` (conditional writes and renames).
    pub(super) prelocked: Option<Vec<Vec<Held>>>,
    /// Follow-up run once all members answered, before the locks are released.
    pub(super) after_all: Option<AfterAll>,
}

impl Shared {
    /// Sends `r` to its members; returns at quorum with the first member's
    /// description of what it stored, if any.
    pub(super) async fn replicate(self: &Arc<Self>, r: Replication) -> Result<Option<ObjectMeta>> {
        let Replication { op, rev, writes, guards, targets, skipped, mut prelocked, after_all } = r;
        let skipped_members: Vec<usize> = skipped.iter().map(|(m, _)| *m).collect();
        for (key, delete) in &writes {
            self.keys.dispatched(key, rev, *delete, &skipped_members);
        }
        let subject = writes.first().map(|(k, _)| k.to_string()).unwrap_or_default();
        // The first member in configured order that takes part: reads go to
        // it first, so an acknowledged write waits for its answer too, and
        // a read right after the write finds the copy there.
        let preferred = targets.iter().map(|(m, _)| *m).min();

        let mut running = FuturesUnordered::new();
        let mut pending: Vec<usize> = Vec::with_capacity(targets.len());
        for (m, member_op) in targets {
            pending.push(m);
            let pre = prelocked.as_mut().and_then(|p| p.get_mut(m)).map(std::mem::take);
            let locks: Vec<_> = guards.iter().map(|g| g.lock_of(m)).collect();
            running.push(async move {
                let held = match pre {
                    Some(held) if !held.is_empty() => held,
                    _ => lock_member(locks).await,
                };
                let live: Vec<bool> = held.iter().map(|applied| **applied < rev).collect();
                let result = if live.iter().any(|l| *l) { member_op(live.clone()).await } else { Ok(None) };
                (m, held, live, result)
            });
        }

        let (tx, mut rx) = mpsc::unbounded_channel();
        let shared = self.clone();
        let logged_key = subject.clone();
        let quorum = self.quorum;
        tokio::spawn(async move {
            let hold = after_all.is_some();
            let mut kept = Vec::new();
            let mut succeeded = Vec::new();
            let mut acknowledged = false;
            while let Some((m, mut held, live, result)) = running.next().await {
                pending.retain(|p| *p != m);
                match &result {
                    Ok(_) => {
                        for (i, (key, _)) in writes.iter().enumerate() {
                            if live[i] {
                                *held[i] = (*held[i]).max(rev);
                            }
                            shared.keys.caught_up(key, m, rev);
                        }
                        succeeded.push(m);
                    }
                    Err(e) => {
                        tracing::warn!(
                            set = %shared.name, member = %shared.members[m].name(), op, key = %logged_key,
                            error = %e, "a member missed a write; it is repaired when it is back"
                        );
                        for (key, delete) in &writes {
                            shared.keys.lagging(key, m, rev, *delete);
                        }
                    }
                }
                let preferred_done = preferred.is_none_or(|p| !pending.contains(&p));
                if !acknowledged && succeeded.len() >= quorum && preferred_done {
                    // Acknowledged now: whoever has not finished lags until it does.
                    acknowledged = true;
                    for p in &pending {
                        for (key, delete) in &writes {
                            shared.keys.lagging(key, *p, rev, *delete);
                        }
                    }
                }
                // The caller may have gone away; the write completes regardless.
                let _ = tx.send((m, result));
                if hold {
                    kept.push(held);
                }
            }
            drop(tx);
            if let Some(after_all) = after_all {
                after_all(succeeded).await;
            }
            drop(kept);
            drop(prelocked);
            for guard in guards {
                let key = guard.key().clone();
                if guard.release() {
                    shared.schedule_repair(&key);
                }
            }
        });

        let total = self.members.len();
        let mut failures = skipped;
        let mut ok = 0;
        let mut meta = None;
        let mut preferred_done = preferred.is_none();
        loop {
            if ok >= self.quorum && preferred_done {
                // Whoever has not finished is marked lagging by now (the
                // supervisor marks before it reports): those marks go to
                // the hint log before the caller hears of success.
                self.keys.persist().await.map_err(|e| e.or_key(&subject).with_operation(op))?;
                return Ok(meta);
            }
            if total - failures.len() < self.quorum {
                return Err(self.quorum_error(op, &subject, ok, &failures));
            }
            match rx.recv().await {
                Some((m, Ok(stored))) => {
                    preferred_done |= Some(m) == preferred;
                    ok += 1;
                    if meta.is_none() {
                        meta = stored;
                    }
                }
                Some((m, Err(e))) => {
                    preferred_done |= Some(m) == preferred;
                    failures.push((m, e));
                }
                None => {
                    // The supervisor ended early (a member operation panicked).
                    let e = Error::new(ErrorKind::Unavailable, "a member operation ended without an answer");
                    failures.push((usize::MAX, e));
                    return Err(self.quorum_error(op, &subject, ok, &failures));
                }
            }
        }
    }

    /// The error of a write that reached `ok` members, fewer than the quorum.
    ///
    /// When every member refused it for the same definite reason (not an
    /// outage), that refusal is the answer; otherwise `Unavailable`,
    /// retryable, naming each member and what happened to it.
    pub(super) fn quorum_error(
        &self,
        op: &'static str,
        key: &str,
        ok: usize,
        failures: &[(usize, Error)],
    ) -> Error {
        if let Some((_, first)) = failures.first() {
            let kind = first.kind();
            if kind != ErrorKind::Unavailable && failures.iter().all(|(_, e)| e.kind() == kind) {
                return relay(first).or_key(key).with_operation(op);
            }
        }
        let details: Vec<String> = failures
            .iter()
            .map(|(m, e)| match self.members.get(*m) {
                Some(member) => format!("`{}`: {e}", member.name()),
                None => e.to_string(),
            })
            .collect();
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the {op} reached {ok} of {} copies but needs {}; {}. A copy that did take it is reconciled \
                 with the others by the scrubber, so the change may still appear; retry once the members are back",
                self.members.len(),
                self.quorum,
                details.join("; ")
            ),
        )
        .with_key(key)
        .with_backend(self.name.as_str())
        .with_operation(op)
        .retryable(true)
    }
}

/// A copy of `e` (kind, message and context; the source is not kept).
pub(super) fn relay(e: &Error) -> Error {
    let mut out = Error::new(e.kind(), e.message()).retryable(e.is_retryable());
    if let Some(key) = e.key() {
        out = out.with_key(key);
    }
    if let Some(backend) = e.backend() {
        out = out.with_backend(backend);
    }
    if let Some(op) = e.operation() {
        out = out.with_operation(op);
    }
    out
}
