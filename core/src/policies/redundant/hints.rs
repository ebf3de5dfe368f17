//! The key table: per-key state that exists only while a key is being
//! written or repaired, or while some member lags behind on it.
//!
//! Invariants (each holds under the table's mutex):
//! - A slot exists while a [`KeyGuard`] for its key is alive or while
//!   `lagging` is not empty; every holder of a member lock holds a guard, so
//!   all concurrent users of a key share the same locks.
//! - `lagging[m] = r`: member `m` missed (failed, was skipped, or had not
//!   finished when the write was acknowledged) a write of revision `r`. A
//!   copy on `m` with a revision below `r` is stale; one at or above is not.
//! - `tombstone = Some(t)`: a delete of revision `t` has been dispatched and
//!   may not have reached every member. It lives while a write is in flight
//!   or a member lags, so repair never copies a deleted value back.
//! - The value behind each member lock is the highest revision this process
//!   applied to that member for the key while the slot lived. A member
//!   write of a lower revision is skipped, so overlapping writes land in
//!   revision order on every member.
//! - A write's revision is taken, and registered in `in_flight`, under the
//!   table's mutex: a write sees every older write of its keys in flight.
//!   Skipping is right for replacements only, so a metadata-only update
//!   (which changes the value before it) waits until no older write of its
//!   key is in flight before it applies.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use crate::error::Result;
use crate::key::Key;

use super::hint::Hint;
use super::hint_log::HintLog;
use super::revision::RevisionClock;

/// One member's lock on one key; the value is the highest revision applied.
pub(super) type MemberLock = Arc<tokio::sync::Mutex<u64>>;
/// A held [`MemberLock`].
pub(super) type Held = OwnedMutexGuard<u64>;

#[derive(Debug)]
struct Slot {
    locks: Arc<[MemberLock]>,
    users: usize,
    repairs: usize,
    /// A read saw differing copies while a repair or write was running.
    recheck: bool,
    in_flight: Vec<u64>,
    lagging: BTreeMap<usize, u64>,
    tombstone: Option<u64>,
}

impl Slot {
    fn settle(&mut self) {
        if self.lagging.is_empty() && self.in_flight.is_empty() {
            self.tombstone = None;
        }
    }
}

/// What of a slot the hint log keeps: its marks and tombstone while some
/// member lags (a tombstone alone only guards writes still in flight).
fn persisted(slot: Option<&Slot>) -> Option<Hint> {
    slot.filter(|s| !s.lagging.is_empty())
        .map(|s| Hint { lagging: s.lagging.clone(), tombstone: s.tombstone })
}

/// Key tables with a hint log, by the log's path: a set rebuilt on reload
/// over the same log shares the table (its locks and hints) with the set
/// it replaces.
static OPEN: Mutex<Vec<OpenLog>> = Mutex::new(Vec::new());

/// An open hint log: its path, its set's member names, and the table.
type OpenLog = (PathBuf, Vec<String>, Weak<KeyTable>);

/// Per-key state of one redundant set.
#[derive(Debug)]
pub(super) struct KeyTable {
    members: usize,
    slots: Mutex<HashMap<String, Slot>>,
    log: Option<HintLog>,
    /// Keys whose hint the log holds now (see `persisted`).
    persisted_keys: AtomicUsize,
    /// The highest revision dispatched through or replayed into the
    /// table: a set that takes the table over (a reload) starts its clock
    /// past it, since the member locks remember revisions up to it.
    newest: AtomicU64,
}

impl KeyTable {
    /// A table kept in memory only.
    pub(super) fn new(members: usize) -> Arc<Self> {
        Arc::new(KeyTable {
            members,
            slots: Mutex::new(HashMap::new()),
            log: None,
            persisted_keys: AtomicUsize::new(0),
            newest: AtomicU64::new(0),
        })
    }

    /// The table of a set of `members` (names, in order) whose hints live
    /// in the log at `path`: the one already open in this process, or
    /// replayed from the file. Also returns the highest revision the log
    /// names, which the set's clock must pass.
    pub(super) fn open(path: &Path, members: &[String]) -> Result<(Arc<Self>, u64)> {
        let mut open = OPEN.lock();
        open.retain(|(_, _, table)| table.strong_count() > 0);
        if let Some(table) =
            open.iter().find(|(p, m, _)| p == path && m == members).and_then(|(_, _, t)| t.upgrade())
        {
            return Ok((table, 0));
        }
        if open.iter().any(|(p, _, _)| p == path) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Config,
                format!(
                    "the hint log {} is in use by a redundant set of other members; give each set its own \
                     `hints_path`",
                    path.display()
                ),
            ));
        }
        let (log, hints) = HintLog::open(path, members)?;
        let mut newest = 0;
        let slots: HashMap<String, Slot> = hints
            .into_iter()
            .map(|(key, hint)| {
                newest = hint.lagging.values().chain(hint.tombstone.iter()).fold(newest, |a, b| a.max(*b));
                let slot = Slot {
                    locks: (0..members.len()).map(|_| Arc::new(tokio::sync::Mutex::new(0))).collect(),
                    users: 0,
                    repairs: 0,
                    recheck: false,
                    in_flight: Vec::new(),
                    lagging: hint.lagging,
                    tombstone: hint.tombstone,
                };
                (key, slot)
            })
            .collect();
        let table = Arc::new(KeyTable {
            members: members.len(),
            persisted_keys: AtomicUsize::new(slots.len()),
            slots: Mutex::new(slots),
            log: Some(log),
            newest: AtomicU64::new(newest),
        });
        open.push((path.to_path_buf(), members.to_vec(), Arc::downgrade(&table)));
        Ok((table, newest))
    }

    /// Buffers a record of `key` in the hint log if its persisted state
    /// changed from `before`. Called with the slots locked.
    fn note(&self, slots: &HashMap<String, Slot>, key: &str, before: Option<Hint>) {
        if let Some(log) = &self.log {
            let after = persisted(slots.get(key));
            if after != before {
                match (before.is_some(), after.is_some()) {
                    (false, true) => self.persisted_keys.fetch_add(1, Ordering::Relaxed),
                    (true, false) => self.persisted_keys.fetch_sub(1, Ordering::Relaxed),
                    _ => 0,
                };
                log.record(key, after.as_ref());
            }
        }
    }

    /// Makes the hints recorded so far durable (nothing to do without a
    /// hint log). A write calls it before it is acknowledged.
    pub(super) async fn persist(&self) -> Result<()> {
        let Some(log) = &self.log else { return Ok(()) };
        log.persist(self.persisted_keys.load(Ordering::Relaxed), || {
            let slots = self.slots.lock();
            let hints =
                slots.iter().filter_map(|(k, s)| persisted(Some(s)).map(|h| (k.clone(), h))).collect();
            (hints, log.take_pending())
        })
        .await
    }

    fn slot<'a>(&self, slots: &'a mut HashMap<String, Slot>, key: &str) -> &'a mut Slot {
        slots.entry(key.to_owned()).or_insert_with(|| Slot {
            locks: (0..self.members).map(|_| Arc::new(tokio::sync::Mutex::new(0))).collect(),
            users: 0,
            repairs: 0,
            recheck: false,
            in_flight: Vec::new(),
            lagging: BTreeMap::new(),
            tombstone: None,
        })
    }

    /// Registers a write of `keys` under a revision taken from `clock` while
    /// the table is locked, so every write of these keys with a lower
    /// revision is already registered when this one is (see
    /// [`KeyTable::older_in_flight`]). Returns the revision and one guard per
    /// key, in the order of `keys`.
    pub(super) fn enter_write<'a>(
        self: &Arc<Self>,
        keys: impl IntoIterator<Item = &'a Key>,
        clock: &RevisionClock,
    ) -> (u64, Vec<KeyGuard>) {
        let mut slots = self.slots.lock();
        let rev = clock.next();
        let guards = keys
            .into_iter()
            .map(|key| {
                let slot = self.slot(&mut slots, key);
                slot.in_flight.push(rev);
                self.guard(slot, key, Some(rev), false)
            })
            .collect();
        (rev, guards)
    }

    /// Whether a write of `key` with a revision below `rev` is still in
    /// flight (dispatched or waiting for its locks, or finishing on a member
    /// after it was acknowledged).
    pub(super) fn older_in_flight(&self, key: &str, rev: u64) -> bool {
        let slots = self.slots.lock();
        slots.get(key).is_some_and(|slot| slot.in_flight.iter().any(|r| *r < rev))
    }

    /// Registers a repair of `key`.
    pub(super) fn enter_repair(self: &Arc<Self>, key: &Key) -> KeyGuard {
        let mut slots = self.slots.lock();
        let slot = self.slot(&mut slots, key);
        self.guard(slot, key, None, true)
    }

    /// Registers a read-repair of `key`. While a repair or a write of the
    /// key runs, asks for a recheck instead (see [`KeyGuard::release`]) and
    /// returns `None`, so repairs neither pile up nor hold writes back.
    pub(super) fn try_enter_repair(self: &Arc<Self>, key: &Key) -> Option<KeyGuard> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get_mut(key.as_str()) {
            if slot.repairs > 0 || !slot.in_flight.is_empty() {
                slot.recheck = true;
                return None;
            }
        }
        let slot = self.slot(&mut slots, key);
        Some(self.guard(slot, key, None, true))
    }

    fn guard(self: &Arc<Self>, slot: &mut Slot, key: &Key, rev: Option<u64>, repair: bool) -> KeyGuard {
        slot.users += 1;
        if repair {
            slot.repairs += 1;
        }
        KeyGuard {
            table: self.clone(),
            key: key.clone(),
            rev,
            repair,
            locks: slot.locks.clone(),
            released: false,
        }
    }

    /// Unregisters a guard; returns whether a recheck was asked for and is
    /// now due (no repair or write of the key left running).
    fn leave(&self, key: &str, rev: Option<u64>, repair: bool) -> bool {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(key) else { return false };
        slot.users = slot.users.saturating_sub(1);
        if repair {
            slot.repairs = slot.repairs.saturating_sub(1);
        }
        if let Some(rev) = rev {
            if let Some(i) = slot.in_flight.iter().position(|r| *r == rev) {
                slot.in_flight.swap_remove(i);
            }
        }
        slot.settle();
        let recheck = slot.recheck && slot.repairs == 0 && slot.in_flight.is_empty();
        if recheck {
            slot.recheck = false;
        }
        if slot.users == 0 && slot.lagging.is_empty() {
            slots.remove(key);
        }
        recheck
    }

    /// The hint of `key`, if it has one.
    pub(super) fn hint(&self, key: &str) -> Option<Hint> {
        let slots = self.slots.lock();
        Self::hint_of(slots.get(key))
    }

    /// The hints of several keys under one lock.
    pub(super) fn hints<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<Option<Hint>> {
        let slots = self.slots.lock();
        keys.map(|k| Self::hint_of(slots.get(k))).collect()
    }

    fn hint_of(slot: Option<&Slot>) -> Option<Hint> {
        slot.filter(|s| !s.lagging.is_empty() || s.tombstone.is_some())
            .map(|s| Hint { lagging: s.lagging.clone(), tombstone: s.tombstone })
    }

    /// Records a write of `rev` being dispatched: a delete leaves a
    /// tombstone, and `skipped` members are lagging from the start.
    pub(super) fn dispatched(&self, key: &str, rev: u64, delete: bool, skipped: &[usize]) {
        self.newest.fetch_max(rev, Ordering::AcqRel);
        let mut slots = self.slots.lock();
        let before = persisted(slots.get(key));
        let slot = self.slot(&mut slots, key);
        if delete {
            slot.tombstone = Some(slot.tombstone.map_or(rev, |t| t.max(rev)));
        }
        for m in skipped {
            let missed = slot.lagging.entry(*m).or_insert(rev);
            *missed = (*missed).max(rev);
        }
        self.note(&slots, key, before);
    }

    /// Records that `member` missed the write of `rev` on `key` (it failed,
    /// or had not finished when the write was acknowledged).
    pub(super) fn lagging(&self, key: &str, member: usize, rev: u64, delete: bool) {
        let mut slots = self.slots.lock();
        let before = persisted(slots.get(key));
        let slot = self.slot(&mut slots, key);
        if delete {
            slot.tombstone = Some(slot.tombstone.map_or(rev, |t| t.max(rev)));
        }
        let missed = slot.lagging.entry(member).or_insert(rev);
        *missed = (*missed).max(rev);
        self.note(&slots, key, before);
    }

    /// Records that `member` holds revision `rev` of `key` (or newer).
    pub(super) fn caught_up(&self, key: &str, member: usize, rev: u64) {
        let mut slots = self.slots.lock();
        let before = persisted(slots.get(key));
        let Some(slot) = slots.get_mut(key) else { return };
        if slot.lagging.get(&member).is_some_and(|missed| *missed <= rev) {
            slot.lagging.remove(&member);
        }
        slot.settle();
        if slot.users == 0 && slot.lagging.is_empty() {
            slots.remove(key);
        }
        self.note(&slots, key, before);
    }

    /// Records that every member holds the same state of `key`, of revision
    /// `rev`: every mark is satisfied except those of writes still in flight
    /// (which may yet land on some member).
    pub(super) fn converged(&self, key: &str, rev: u64) {
        let mut slots = self.slots.lock();
        let before = persisted(slots.get(key));
        let Some(slot) = slots.get_mut(key) else { return };
        let in_flight = slot.in_flight.clone();
        slot.lagging.retain(|_, missed| *missed > rev && in_flight.contains(missed));
        slot.settle();
        if slot.users == 0 && slot.lagging.is_empty() {
            slots.remove(key);
        }
        self.note(&slots, key, before);
    }

    /// Keys some member lags behind on (the hint set), in byte order.
    pub(super) fn lagging_keys(&self) -> Vec<String> {
        let slots = self.slots.lock();
        let mut keys: Vec<String> =
            slots.iter().filter(|(_, s)| !s.lagging.is_empty()).map(|(k, _)| k.clone()).collect();
        keys.sort_unstable();
        keys
    }
}

/// Keeps a key's slot alive; gives access to its member locks.
#[derive(Debug)]
pub(super) struct KeyGuard {
    table: Arc<KeyTable>,
    key: Key,
    rev: Option<u64>,
    repair: bool,
    locks: Arc<[MemberLock]>,
    released: bool,
}

impl KeyGuard {
    /// The key.
    pub(super) fn key(&self) -> &Key {
        &self.key
    }

    /// The lock of `member` on this key.
    pub(super) fn lock_of(&self, member: usize) -> MemberLock {
        self.locks[member].clone()
    }

    /// Unregisters now; returns whether a read asked for a recheck of the
    /// key while this guard's repair or write ran, and the key should be
    /// repaired again.
    pub(super) fn release(mut self) -> bool {
        self.released = true;
        self.table.leave(self.key.as_str(), self.rev, self.repair)
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if !self.released {
            self.table.leave(self.key.as_str(), self.rev, self.repair);
        }
    }
}

/// Locks every member's lock on every key of `guards` (sorted by key), in
/// (key, member) order, the one global order all lockers follow. Returns
/// the held locks as `[member][key]`.
pub(super) async fn lock_all(guards: &[KeyGuard], members: usize) -> Vec<Vec<Held>> {
    let mut held: Vec<Vec<Held>> = (0..members).map(|_| Vec::with_capacity(guards.len())).collect();
    for guard in guards {
        for (m, slot) in held.iter_mut().enumerate() {
            slot.push(guard.lock_of(m).lock_owned().await);
        }
    }
    held
}

/// Locks one member's locks on `locks` (in key order).
pub(super) async fn lock_member(locks: Vec<MemberLock>) -> Vec<Held> {
    let mut held = Vec::with_capacity(locks.len());
    for lock in locks {
        held.push(lock.lock_owned().await);
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    impl KeyTable {
        /// A write of the given revision (the set takes it from its clock).
        fn enter(self: &Arc<Self>, key: &Key, rev: Option<u64>) -> KeyGuard {
            let mut slots = self.slots.lock();
            let slot = self.slot(&mut slots, key);
            slot.in_flight.extend(rev);
            self.guard(slot, key, rev, false)
        }
    }

    #[test]
    fn a_write_sees_every_older_write_of_its_key_in_flight() {
        let table = KeyTable::new(2);
        let clock = RevisionClock::default();
        let (older, first) = table.enter_write([&key("k")], &clock);
        let (newer, second) = table.enter_write([&key("k"), &key("other")], &clock);
        assert!(newer > older);
        assert!(table.older_in_flight("k", newer));
        assert!(!table.older_in_flight("k", older));
        assert!(!table.older_in_flight("other", newer));
        drop(first);
        assert!(!table.older_in_flight("k", newer));
        drop(second);
    }

    #[test]
    fn slots_live_while_used_or_lagging() {
        let table = KeyTable::new(3);
        let guard = table.enter(&key("a"), Some(10));
        table.dispatched("a", 10, true, &[2]);
        assert_eq!(table.hint("a").unwrap().tombstone, Some(10));
        table.caught_up("a", 0, 10);
        drop(guard);
        // Member 2 was skipped: the key stays hinted, with its tombstone.
        let hint = table.hint("a").unwrap();
        assert_eq!(hint.lagging.get(&2), Some(&10));
        assert!(hint.latest_is_delete());
        assert!(!hint.trusts(2, 9) && hint.trusts(2, 10) && hint.trusts(0, 1));
        assert_eq!(table.lagging_keys(), ["a"]);
        table.caught_up("a", 2, 10);
        assert_eq!(table.hint("a"), None);
        assert!(table.slots.lock().is_empty());
    }

    #[test]
    fn convergence_keeps_marks_of_writes_in_flight() {
        let table = KeyTable::new(2);
        let guard = table.enter(&key("k"), Some(20));
        table.lagging("k", 0, 15, false);
        table.lagging("k", 1, 20, false);
        table.converged("k", 10);
        assert_eq!(table.hint("k").unwrap().lagging, BTreeMap::from([(1, 20)]));
        drop(guard);
        table.converged("k", 10);
        assert_eq!(table.hint("k"), None);
    }

    #[test]
    fn read_repairs_do_not_pile_up() {
        let table = KeyTable::new(2);
        let first = table.try_enter_repair(&key("k")).unwrap();
        assert!(table.try_enter_repair(&key("k")).is_none());
        // The skipped read asked for a recheck, due once the repair ends.
        assert!(first.release());
        let write = table.enter(&key("k"), Some(1));
        let other = table.enter(&key("k"), Some(2));
        assert!(table.try_enter_repair(&key("k")).is_none());
        assert!(!write.release(), "a write is still running");
        assert!(other.release());
        let quiet = table.enter(&key("k"), Some(3));
        assert!(!quiet.release());
        assert!(table.try_enter_repair(&key("k")).is_some());
    }
}
