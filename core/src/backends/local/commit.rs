//! Group commit: writers that arrive while a transaction is being made
//! durable share the next one, so N concurrent puts cost one fsync, not N.
//!
//! Each writer queues its unit (a put, a delete, a whole batch, a finished
//! streamed write) and then takes the commit lock. Whoever holds the lock
//! drains the whole queue and commits every unit in it in one redb write
//! transaction; a writer that gets the lock and finds its unit already
//! committed by someone before it returns that outcome. A unit is still all
//! or nothing: its conditions (`if_not_exists`) are checked, in order and
//! against the units committed before it in the same transaction, before
//! any of its ops is applied, so a unit that fails is skipped whole and the
//! others commit. If the transaction itself fails, each unit is tried again
//! alone, so one bad unit never fails its neighbours.

use std::collections::HashMap;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use redb::{ReadableTable, Table};

use super::patch::{self, PatchBody, REDO};
use super::record::{self, Body, Record};
use super::{db_error, LocalStorage, StagedBody, StagedOp, OBJECTS, SYS, VERSION_KEY};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::ObjectMeta;

/// What committing one unit gave: the metadata of each put, and the blobs
/// of the values it replaced (to remove once the transaction is durable).
pub(super) type Outcome = Result<(Vec<ObjectMeta>, Vec<u64>)>;

type Slot = Arc<Mutex<Option<Outcome>>>;

/// The queue of units waiting for a transaction.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Vec<(Vec<StagedOp>, Slot)>>,
    lock: Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("queued", &self.queue.lock().len()).finish()
    }
}

impl GroupCommit {
    /// Commits `ops` as one unit, durably, possibly together with other
    /// writers' units. Blocks; call off the executor.
    pub fn submit(&self, store: &LocalStorage, ops: Vec<StagedOp>) -> Outcome {
        let slot: Slot = Arc::default();
        self.queue.lock().push((ops, slot.clone()));
        let _leader = self.lock.lock();
        if let Some(outcome) = slot.lock().take() {
            return outcome;
        }
        let (units, slots): (Vec<_>, Vec<_>) = mem::take(&mut *self.queue.lock()).into_iter().unzip();
        let outcomes = match commit_units(store, &units) {
            Ok(outcomes) => outcomes,
            Err(e) if units.len() == 1 => vec![Err(e)],
            Err(_) => units
                .iter()
                .map(|unit| match commit_units(store, std::slice::from_ref(unit)) {
                    Ok(mut one) => one.pop().expect("one unit, one outcome"),
                    Err(e) => Err(e),
                })
                .collect(),
        };
        for (slot, outcome) in slots.iter().zip(outcomes) {
            *slot.lock() = Some(outcome);
        }
        let outcome = slot.lock().take();
        outcome.expect("the leader commits its own unit")
    }
}

/// Commits `units` in one durable transaction; `Err` when the transaction
/// as a whole failed (nothing of it is stored).
fn commit_units(store: &LocalStorage, units: &[Vec<StagedOp>]) -> Result<Vec<Outcome>> {
    match commit_in_txn(store, units) {
        Ok(outcomes) => {
            store.after_success();
            Ok(outcomes)
        }
        // A failed commit on I/O (a full device) poisons the handle, which
        // is reopened; deletes then go on in the reserve's room.
        Err(e) => {
            let freed = store.recover_after_failure(&e);
            let deletes_only = units.iter().flatten().all(|op| matches!(op, StagedOp::Delete(_)));
            if freed && deletes_only {
                return commit_in_txn(store, units);
            }
            Err(e)
        }
    }
}

fn commit_in_txn(store: &LocalStorage, units: &[Vec<StagedOp>]) -> Result<Vec<Outcome>> {
    // The handle stays in use (a reopen waits) until the transaction ends.
    let db = store.inner.db.get()?;
    let txn = db.begin_write().map_err(db_error)?;
    let mut outcomes = Vec::with_capacity(units.len());
    {
        let mut objects = txn.open_table(OBJECTS).map_err(db_error)?;
        let mut redo = txn.open_table(REDO).map_err(db_error)?;
        let applied = mem::take(&mut *store.inner.applied_redo.lock());
        patch::forget_applied(&mut redo, applied)?;
        let modified = SystemTime::now();
        let mut last_version = None;
        for ops in units {
            if let Err(e) = check_conditions(&objects, ops) {
                outcomes.push(Err(e));
                continue;
            }
            let version = store.inner.version.fetch_add(1, Ordering::Relaxed) + 1;
            last_version = Some(version);
            outcomes.push(Ok(apply(&mut objects, &mut redo, ops, version, modified)?));
        }
        if let Some(version) = last_version {
            let mut sys = txn.open_table(SYS).map_err(db_error)?;
            sys.insert(VERSION_KEY, version).map_err(db_error)?;
        }
    }
    txn.commit().map_err(db_error)?;
    Ok(outcomes)
}

/// Fails when a put of `ops` asks for an absent key that is present, seen
/// after the ops before it in the same unit.
fn check_conditions(objects: &Table<&str, &[u8]>, ops: &[StagedOp]) -> Result<()> {
    let conditional = |op: &StagedOp| match op {
        StagedOp::Put(put) => put.if_not_exists,
        StagedOp::Delete(_) => false,
        StagedOp::SetMetadata(..) | StagedOp::Patch(_) => true,
    };
    if !ops.iter().any(conditional) {
        return Ok(());
    }
    let mut touched: HashMap<&str, bool> = HashMap::new();
    for op in ops {
        match op {
            StagedOp::Put(put) => {
                let key = put.key.as_str();
                if put.if_not_exists {
                    let present = match touched.get(key) {
                        Some(present) => *present,
                        None => objects.get(key).map_err(db_error)?.is_some(),
                    };
                    if present {
                        return Err(Error::new(
                            ErrorKind::AlreadyExists,
                            "the key exists and the put asked that it did not",
                        )
                        .with_key(key));
                    }
                }
                touched.insert(key, true);
            }
            StagedOp::Delete(key) => {
                touched.insert(key.as_str(), false);
            }
            StagedOp::SetMetadata(key, _, condition) => {
                if touched.get(key.as_str()) == Some(&false) {
                    return Err(Error::not_found(key.as_str()));
                }
                let stored = objects.get(key.as_str()).map_err(db_error)?;
                let stored = stored.ok_or_else(|| Error::not_found(key.as_str()))?;
                let record = record::decode(stored.value()).map_err(|e| e.with_key(key.as_str()))?;
                condition.check(&LocalStorage::meta_of(key, &record))?;
            }
            StagedOp::Patch(staged) => {
                let key = staged.key.as_str();
                let current = match touched.get(key) {
                    Some(false) => None,
                    _ => match objects.get(key).map_err(db_error)? {
                        Some(stored) => {
                            Some(record::decode(stored.value()).map_err(|e| e.with_key(key))?.version)
                        }
                        None => None,
                    },
                };
                patch::check_unmoved(current, staged)?;
                touched.insert(key, true);
            }
        }
    }
    Ok(())
}

/// Applies the ops of one unit whose conditions hold.
fn apply(
    objects: &mut Table<&str, &[u8]>,
    redo: &mut Table<u64, &[u8]>,
    ops: &[StagedOp],
    version: u64,
    modified: SystemTime,
) -> Result<(Vec<ObjectMeta>, Vec<u64>)> {
    let mut metas = Vec::new();
    let mut replaced = Vec::new();
    for op in ops {
        let (key, old) = match op {
            StagedOp::Put(put) => {
                let record = Record {
                    size: put.size,
                    modified,
                    version,
                    metadata: put.metadata.clone(),
                    body: match &put.body {
                        StagedBody::Inline(bytes) => Body::Inline(bytes),
                        StagedBody::Blob(id) => Body::Blob(*id),
                    },
                };
                let old = objects.insert(put.key.as_str(), record::encode(&record).as_slice());
                metas.push(LocalStorage::meta_of(&put.key, &record));
                (&put.key, old.map_err(db_error)?.map(|v| record::decode(v.value()).map(|r| r.blob_id())))
            }
            StagedOp::Delete(key) => {
                let old = objects.remove(key.as_str()).map_err(db_error)?;
                (key, old.map(|v| record::decode(v.value()).map(|r| r.blob_id())))
            }
            StagedOp::SetMetadata(key, changes, _) => {
                // Conditions checked it exists; the body (inline bytes or
                // blob id) is carried over as it is.
                let stored = objects.get(key.as_str()).map_err(db_error)?;
                let stored = stored.ok_or_else(|| Error::not_found(key.as_str()))?.value().to_vec();
                let mut record = record::decode(&stored).map_err(|e| e.with_key(key.as_str()))?;
                changes.apply(&mut record.metadata);
                record.version = version;
                objects.insert(key.as_str(), record::encode(&record).as_slice()).map_err(db_error)?;
                metas.push(LocalStorage::meta_of(key, &record));
                continue;
            }
            StagedOp::Patch(staged) => {
                // Conditions checked the record is the one patched.
                let key = &staged.key;
                let stored = objects.get(key.as_str()).map_err(db_error)?;
                let stored = stored.ok_or_else(|| Error::not_found(key.as_str()))?.value().to_vec();
                let old = record::decode(&stored).map_err(|e| e.with_key(key.as_str()))?;
                let mut metadata = old.metadata.clone();
                staged.metadata.apply(&mut metadata);
                let body = match &staged.body {
                    PatchBody::Inline(bytes) => Body::Inline(bytes),
                    PatchBody::NewBlob(id) => Body::Blob(*id),
                    PatchBody::InPlace { id, redo: record } => {
                        redo.insert(*id, record.encode(version).as_slice()).map_err(db_error)?;
                        Body::Blob(*id)
                    }
                };
                let record = Record { size: staged.size, modified, version, metadata, body };
                objects.insert(key.as_str(), record::encode(&record).as_slice()).map_err(db_error)?;
                metas.push(LocalStorage::meta_of(key, &record));
                match (old.blob_id(), record.blob_id()) {
                    (Some(old), new) if new != Some(old) => {
                        redo.remove(old).map_err(db_error)?;
                        replaced.push(old);
                    }
                    _ => {}
                }
                continue;
            }
        };
        if let Some(old) = old {
            if let Some(id) = old.map_err(|e| e.with_key(key.as_str()))? {
                redo.remove(id).map_err(db_error)?;
                replaced.push(id);
            }
        }
    }
    Ok((metas, replaced))
}
