//! Repair and catch-up: bringing every reachable member to a key's resolved
//! state, for one key (read-repair, hints) or for all (the full scrub).

use std::collections::VecDeque;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{stream_value, ListEntry, ListOptions, ObjectMeta, PutOptions};

use super::hints::{lock_all, Held, KeyGuard};
use super::resolve::{resolve, Replica, Resolved};
use super::revision::revision;
use super::Shared;

/// Page size of the listings compared by the full scrub.
const SCRUB_PAGE: usize = 1000;
/// Most errors a [`ScrubReport`] keeps (all are counted).
pub const MAX_REPORTED_ERRORS: usize = 32;

/// What one [`scrub_once`](super::RedundantStorage::scrub_once) did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ScrubReport {
    /// Keys in the hint set (some member lagging) when the scrub started.
    pub hinted_keys: usize,
    /// Keys compared across members by the full pass.
    pub keys_compared: u64,
    /// Copies written or deleted to bring members in line (also counted in
    /// [`StorageMetrics::repair`](crate::metrics::StorageMetrics::repair)).
    pub repairs: u64,
    /// Keys some member still lags behind on afterwards: a member that holds
    /// or misses them is unreachable. They are retried by the next scrub.
    pub still_lagging: usize,
    /// Members that could not be listed (unhealthy or failing), by name.
    pub unreachable: Vec<String>,
    /// Repairs or listings that failed.
    pub failures: u64,
    /// The first [`MAX_REPORTED_ERRORS`] of those failures.
    pub errors: Vec<Error>,
}

impl ScrubReport {
    fn failed(&mut self, error: Error) {
        self.failures += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }

    fn absorb(&mut self, repair: KeyRepair) {
        self.repairs += repair.repaired;
        for e in repair.errors {
            self.failed(e);
        }
    }
}

/// What the repair of one key did.
#[derive(Debug, Default)]
pub(super) struct KeyRepair {
    /// Copies written or deleted.
    pub(super) repaired: u64,
    /// Members that could not be repaired, with why.
    pub(super) errors: Vec<Error>,
}

impl Shared {
    /// Repairs `key` with every member's lock on it held by the caller
    /// (`held[m]` is member `m`'s): resolves the current state and applies it
    /// to each reachable member that differs.
    pub(super) async fn repair_held(&self, key: &Key, held: &mut [&mut Held]) -> KeyRepair {
        let hint = self.keys.hint(key);
        let (mut replicas, _) = self.observe(key).await;
        let resolved = resolve(&replicas, hint.as_ref());
        let mut out = KeyRepair::default();
        let Some(rev) = resolved.rev() else { return out };
        for (m, replica) in replicas.iter_mut().enumerate() {
            if resolved.matches(replica) != Some(false) {
                continue;
            }
            let member = &*self.members[m];
            let result = match &resolved {
                Resolved::Present { member: source, meta, .. } => stream_value(
                    &*self.members[*source],
                    key,
                    member,
                    key,
                    PutOptions::with_metadata(meta.metadata.clone()),
                )
                .await
                .map(Replica::Present),
                Resolved::Absent { .. } => member.delete(key).await.map(|()| Replica::Absent),
                Resolved::Unknown => continue,
            };
            match result {
                Ok(now) => {
                    if let Some(applied) = held.get_mut(m) {
                        ***applied = (***applied).max(rev);
                    }
                    *replica = now;
                    out.repaired += 1;
                    self.metrics.repair();
                    tracing::info!(set = %self.name, member = %member.name(), key = %key, rev, "repaired a copy");
                }
                Err(e) => {
                    *replica = Replica::Unreachable;
                    out.errors.push(e.or_key(key).with_backend(member.name()).with_operation("repair"));
                }
            }
        }
        for (m, replica) in replicas.iter().enumerate() {
            if resolved.matches(replica) == Some(true) {
                self.keys.caught_up(key, m, rev);
            }
        }
        if replicas.iter().all(|r| resolved.matches(r) == Some(true)) {
            self.keys.converged(key, rev);
        }
        out
    }

    /// Repairs the key of `guard` (a repair registration), taking its locks;
    /// again if a read asked for a recheck meanwhile.
    pub(super) async fn repair_guarded(&self, guard: KeyGuard) -> KeyRepair {
        let mut total = KeyRepair::default();
        let mut guard = guard;
        loop {
            let key = guard.key().clone();
            let guards = [guard];
            let mut held = lock_all(&guards, self.members.len()).await;
            let mut locks: Vec<&mut Held> = held.iter_mut().filter_map(|h| h.first_mut()).collect();
            let repair = self.repair_held(&key, &mut locks).await;
            drop(held);
            for e in &repair.errors {
                tracing::warn!(set = %self.name, error = %e, "a repair failed; the next scrub retries it");
            }
            total.repaired += repair.repaired;
            total.errors.extend(repair.errors);
            let [guard_done] = guards;
            if !guard_done.release() {
                return total;
            }
            match self.keys.try_enter_repair(&key) {
                Some(again) => guard = again,
                None => return total,
            }
        }
    }

    async fn repair_key(&self, key: &Key) -> KeyRepair {
        self.repair_guarded(self.keys.enter_repair(key)).await
    }

    pub(super) async fn scrub_once(&self) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let hinted = self.keys.lagging_keys();
        report.hinted_keys = hinted.len();
        for key in hinted {
            match Key::new(key.as_str()) {
                Ok(key) => report.absorb(self.repair_key(&key).await),
                Err(e) => report.failed(e),
            }
        }
        self.compare_all(&mut report).await?;
        report.still_lagging = self.keys.lagging_keys().len();
        // The repairs' clearing records (losing them is harmless: a key
        // marked lagging is only checked again).
        if let Err(e) = self.keys.persist().await {
            report.failed(e);
        }
        Ok(report)
    }

    /// The full pass: walks the recursive listings of all members in key
    /// order and repairs every key whose copies are missing somewhere or
    /// disagree on the revision.
    async fn compare_all(&self, report: &mut ScrubReport) -> Result<()> {
        struct Cursor {
            member: usize,
            buffer: VecDeque<ObjectMeta>,
            after: Option<String>,
            done: bool,
            failed: bool,
        }
        let mut cursors = Vec::new();
        for (m, member) in self.members.iter().enumerate() {
            if member.is_healthy() {
                cursors.push(Cursor {
                    member: m,
                    buffer: VecDeque::new(),
                    after: None,
                    done: false,
                    failed: false,
                });
            } else {
                report.unreachable.push(member.name().to_owned());
            }
        }
        loop {
            for cursor in cursors.iter_mut() {
                while cursor.buffer.is_empty() && !cursor.done {
                    let options = ListOptions {
                        start_after: cursor.after.clone(),
                        limit: Some(SCRUB_PAGE),
                        ..ListOptions::recursive("")
                    };
                    let member = &self.members[cursor.member];
                    match member.list(&options).await {
                        Ok(page) => {
                            cursor.buffer.extend(page.entries.into_iter().filter_map(|e| match e {
                                ListEntry::Object(meta) => Some(meta),
                                ListEntry::Prefix(_) => None,
                            }));
                            cursor.done = page.next.is_none();
                            cursor.after = page.next;
                        }
                        Err(e) => {
                            cursor.done = true;
                            cursor.failed = true;
                            report.unreachable.push(member.name().to_owned());
                            report.failed(e);
                        }
                    }
                }
            }
            let live = cursors.iter().filter(|c| !c.failed).count();
            if live == 0 {
                let e = Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "no member could be listed (unreachable: {}); the scrub retries later",
                        report.unreachable.join(", ")
                    ),
                )
                .with_backend(self.name.as_str())
                .with_operation("scrub")
                .retryable(true);
                return Err(e);
            }
            let Some(key) = cursors.iter().filter_map(|c| c.buffer.front().map(|m| m.key.clone())).min()
            else {
                return Ok(());
            };
            let mut revisions = Vec::with_capacity(cursors.len());
            for cursor in cursors.iter_mut() {
                if cursor.buffer.front().is_some_and(|m| m.key == key) {
                    if let Some(meta) = cursor.buffer.pop_front() {
                        revisions.push(revision(&meta.metadata));
                    }
                }
            }
            report.keys_compared += 1;
            let agree = revisions.len() == live && revisions.windows(2).all(|w| w[0] == w[1]);
            if !agree {
                report.absorb(self.repair_key(&key).await);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Metadata, Storage};
    use crate::MemoryStorage;

    #[tokio::test]
    async fn copies_stream_value_and_metadata() {
        let (a, b) = (MemoryStorage::new("a"), MemoryStorage::new("b"));
        let key = Key::new("k").unwrap();
        let mut metadata = Metadata::new();
        metadata.insert("tierfs.rev".into(), "7".into());
        let value = bytes::Bytes::from(vec![3u8; 3 << 20]);
        a.put(&key, value.clone(), PutOptions::with_metadata(metadata.clone())).await.unwrap();
        let meta =
            stream_value(&a, &key, &b, &key, PutOptions::with_metadata(metadata.clone())).await.unwrap();
        assert_eq!(meta.size, value.len() as u64);
        assert_eq!(b.get(&key).await.unwrap(), value);
        assert_eq!(b.stat(&key).await.unwrap().metadata, metadata);
        let missing = Key::new("missing").unwrap();
        let e = stream_value(&a, &missing, &b, &missing, PutOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(b.stat(&missing).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
}
