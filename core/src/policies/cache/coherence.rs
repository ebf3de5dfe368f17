//! Keeping the cache tier coherent with the primary, and tier failures
//! harmless.
//!
//! # The stale fill, and why it cannot happen
//!
//! A reader that misses reads the primary and then fills the tier. If a
//! writer changed the key in between, the reader holds the old value, and
//! filling it after the writer invalidated would serve the old value after
//! the write was acknowledged, until evicted. Keys hash onto [`STRIPES`]
//! stripes, each with a generation counter, a count of writes in flight and
//! an async read-write lock:
//!
//! - A reader takes a [`ReadTicket`] (the stripe's generation) *before* it
//!   reads the primary, and fills only under the stripe's read lock, and
//!   only if the generation is unchanged and no write is in flight.
//! - A writer, before calling the primary ([`Coherence::begin_write`]),
//!   takes the write lock, counts itself in flight and bumps the
//!   generation, then invalidates the key. After the primary answers
//!   ([`Coherence::end_write`]) it takes the write lock again, installs its
//!   new value if no other write touched the stripe meanwhile (else
//!   invalidates), bumps the generation and leaves the in-flight count.
//!
//! So a fill either completed before the writer's first lock, and the
//! writer's invalidations remove it, or it checks after, and sees a new
//! generation or a write in flight and is dropped: once a write is
//! acknowledged, the tier holds nothing older than it. The tier is not
//! touched while a write is in flight except by writers, so a write whose
//! future is dropped half-way (cancelled) leaves the key invalidated, never
//! stale: dropping the ticket bumps the generation and leaves the count.
//! Stripes, not keys, carry the counters, so memory stays fixed; two keys
//! sharing a stripe only cost each other a skipped fill.
//!
//! # Tier failures
//!
//! A tier error never fails an operation: it is logged (a warning when the
//! tier starts failing, debug messages while it keeps failing, and a note
//! when it answers again) and counted. A failed `get` reads the primary;
//! a failed fill is dropped. A failed invalidation (or update) could leave
//! an old entry behind, so the key is remembered as *pending*: its reads
//! bypass the tier and retry the invalidation until one succeeds. Past
//! [`MAX_PENDING`] keys, the whole tier is bypassed until a `clear` succeeds.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::RwLock;

use super::tier::{CacheTier, CachedValue};
use crate::error::Error;
use crate::key::Key;

/// Number of generation stripes.
pub const STRIPES: usize = 1024;
/// Keys with a failed invalidation remembered one by one; past this the
/// whole tier is bypassed until it is cleared.
pub const MAX_PENDING: usize = 10_000;

#[derive(Debug, Default)]
struct Stripe {
    lock: RwLock<()>,
    generation: AtomicU64,
    writers: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    /// Keys whose entry may be stale, with the epoch of their last failure.
    keys: HashMap<Key, u64>,
    /// Set (to the epoch of the last failure) when `keys` overflowed.
    overflow: Option<u64>,
    epoch: u64,
}

enum PendingState {
    Clean,
    Key(u64),
    All(u64),
}

/// What the tier said about a key.
pub(super) enum Lookup {
    /// A fresh entry.
    Hit(CachedValue),
    /// No entry; the value read from the primary may be filled.
    Miss,
    /// The tier failed or may hold a stale entry: read the primary, don't fill.
    Bypass,
}

/// A stripe's generation, taken by a reader before it reads the primary.
#[derive(Debug)]
pub(super) struct ReadTicket {
    stripe: usize,
    generation: u64,
}

/// A write in flight on a key; see the module documentation.
pub(super) struct WriteTicket {
    coherence: Arc<Coherence>,
    key: Key,
    stripe: usize,
    generation: u64,
    done: bool,
}

impl Drop for WriteTicket {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled between begin and end: the key was invalidated at
            // the start and no fill has landed since; keep it that way.
            let stripe = &self.coherence.stripes[self.stripe];
            stripe.generation.fetch_add(1, SeqCst);
            stripe.writers.fetch_sub(1, SeqCst);
        }
    }
}

/// The tier with its coherence protocol and failure handling.
pub(super) struct Coherence {
    tier: Arc<dyn CacheTier>,
    stripes: Box<[Stripe]>,
    hasher: RandomState,
    pending: Mutex<Pending>,
    any_pending: AtomicBool,
    failing: AtomicBool,
    errors: AtomicU64,
}

impl fmt::Debug for Coherence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coherence")
            .field("tier", &self.tier)
            .field("pending", &self.pending.lock().keys.len())
            .field("errors", &self.errors.load(SeqCst))
            .finish()
    }
}

impl Coherence {
    pub(super) fn new(tier: Arc<dyn CacheTier>) -> Self {
        Coherence {
            tier,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: RandomState::new(),
            pending: Mutex::default(),
            any_pending: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        }
    }

    pub(super) fn tier(&self) -> &Arc<dyn CacheTier> {
        &self.tier
    }

    /// Tier calls that failed so far.
    pub(super) fn errors(&self) -> u64 {
        self.errors.load(SeqCst)
    }

    /// Keys currently kept out of the tier after a failed invalidation.
    pub(super) fn pending_keys(&self) -> usize {
        self.pending.lock().keys.len()
    }

    fn stripe_of(&self, key: &Key) -> usize {
        (self.hasher.hash_one(key.as_str()) % STRIPES as u64) as usize
    }

    /// The value of the tier's live entry of `key` when the tier answers
    /// at once ([`CacheTier::value_now`]) and nothing is pending; `None` for
    /// everything else (a miss, an error, a remote tier, a pending
    /// invalidation), which [`Coherence::lookup`] then handles and records.
    pub(super) fn hit_now(&self, key: &Key) -> Option<Bytes> {
        if self.any_pending.load(SeqCst) {
            return None;
        }
        let value = self.tier.value_now(key)?.ok()??;
        self.answered();
        Some(value)
    }

    /// Looks `key` up in the tier.
    pub(super) async fn lookup(&self, key: &Key) -> Lookup {
        if self.any_pending.load(SeqCst) {
            match self.pending_state(key) {
                PendingState::Clean => {}
                PendingState::Key(epoch) => match self.tier.invalidate(key).await {
                    Ok(()) => {
                        self.answered();
                        self.resolved_key(key, epoch);
                        return Lookup::Miss;
                    }
                    Err(e) => {
                        self.failed("invalidate", Some(key), &e);
                        return Lookup::Bypass;
                    }
                },
                PendingState::All(epoch) => match self.tier.clear().await {
                    Ok(()) => {
                        self.answered();
                        self.resolved_all(epoch);
                        return Lookup::Miss;
                    }
                    Err(e) => {
                        self.failed("clear", None, &e);
                        return Lookup::Bypass;
                    }
                },
            }
        }
        let answer = match self.tier.get_now(key) {
            Some(answer) => answer,
            None => self.tier.get(key).await,
        };
        match answer {
            Ok(Some(value)) => {
                self.answered();
                Lookup::Hit(value)
            }
            Ok(None) => {
                self.answered();
                Lookup::Miss
            }
            Err(e) => {
                self.failed("get", Some(key), &e);
                Lookup::Bypass
            }
        }
    }

    /// To take before reading the primary for a fill.
    pub(super) fn read_ticket(&self, key: &Key) -> ReadTicket {
        let stripe = self.stripe_of(key);
        ReadTicket { stripe, generation: self.stripes[stripe].generation.load(SeqCst) }
    }

    /// Fills the tier with `value` read from the primary under `ticket`,
    /// unless a write may have changed the key since the ticket was taken.
    pub(super) async fn fill(&self, key: &Key, ticket: &ReadTicket, value: CachedValue) {
        let stripe = &self.stripes[ticket.stripe];
        let _shared = match stripe.lock.try_read() {
            Ok(shared) => shared,
            Err(_) => stripe.lock.read().await,
        };
        if stripe.generation.load(SeqCst) != ticket.generation || stripe.writers.load(SeqCst) != 0 {
            return;
        }
        let stored = match self.tier.put_now(key, value) {
            Ok(stored) => stored,
            Err(value) => self.tier.put(key, value).await,
        };
        match stored {
            Ok(()) => self.answered(),
            Err(e) => self.failed("put", Some(key), &e),
        }
    }

    /// Announces a write of `key` to the primary; call before the primary.
    pub(super) async fn begin_write(self: &Arc<Self>, key: &Key) -> WriteTicket {
        let index = self.stripe_of(key);
        let stripe = &self.stripes[index];
        let generation = {
            let _exclusive = stripe.lock.write().await;
            stripe.writers.fetch_add(1, SeqCst);
            stripe.generation.fetch_add(1, SeqCst) + 1
        };
        let ticket =
            WriteTicket { coherence: self.clone(), key: key.clone(), stripe: index, generation, done: false };
        self.invalidate(key).await;
        ticket
    }

    /// Ends a write after the primary answered: installs `value` (what
    /// the primary now holds, if it should be cached) or invalidates.
    pub(super) async fn end_write(&self, mut ticket: WriteTicket, value: Option<CachedValue>) {
        let stripe = &self.stripes[ticket.stripe];
        {
            let _exclusive = stripe.lock.write().await;
            let alone =
                stripe.generation.load(SeqCst) == ticket.generation && stripe.writers.load(SeqCst) == 1;
            match value {
                Some(value) if alone => self.store(&ticket.key, value).await,
                _ => self.invalidate(&ticket.key).await,
            }
            stripe.generation.fetch_add(1, SeqCst);
            stripe.writers.fetch_sub(1, SeqCst);
            ticket.done = true;
        }
    }

    async fn invalidate(&self, key: &Key) {
        match self.tier.invalidate(key).await {
            Ok(()) => self.answered(),
            Err(e) => {
                self.failed("invalidate", Some(key), &e);
                self.mark_pending(key);
            }
        }
    }

    async fn store(&self, key: &Key, value: CachedValue) {
        match self.tier.put(key, value).await {
            Ok(()) => self.answered(),
            Err(e) => {
                self.failed("put", Some(key), &e);
                self.mark_pending(key);
            }
        }
    }

    fn mark_pending(&self, key: &Key) {
        let mut pending = self.pending.lock();
        pending.epoch += 1;
        let epoch = pending.epoch;
        if pending.overflow.is_some()
            || (pending.keys.len() >= MAX_PENDING && !pending.keys.contains_key(key))
        {
            pending.overflow = Some(epoch);
        } else {
            pending.keys.insert(key.clone(), epoch);
        }
        self.any_pending.store(true, SeqCst);
    }

    fn pending_state(&self, key: &Key) -> PendingState {
        let pending = self.pending.lock();
        if pending.overflow.is_some() {
            return PendingState::All(pending.epoch);
        }
        match pending.keys.get(key) {
            Some(epoch) => PendingState::Key(*epoch),
            None => PendingState::Clean,
        }
    }

    /// An invalidation of `key` that started after failure `epoch` succeeded.
    fn resolved_key(&self, key: &Key, epoch: u64) {
        let mut pending = self.pending.lock();
        if pending.keys.get(key) == Some(&epoch) {
            pending.keys.remove(key);
        }
        self.any_pending.store(!pending.keys.is_empty() || pending.overflow.is_some(), SeqCst);
    }

    /// A clear that started after failure `epoch` succeeded.
    fn resolved_all(&self, epoch: u64) {
        let mut pending = self.pending.lock();
        pending.keys.retain(|_, e| *e > epoch);
        if pending.overflow.is_some_and(|e| e <= epoch) {
            pending.overflow = None;
        }
        self.any_pending.store(!pending.keys.is_empty() || pending.overflow.is_some(), SeqCst);
    }

    fn answered(&self) {
        if self.failing.load(SeqCst) && self.failing.swap(false, SeqCst) {
            tracing::info!(tier = self.tier.name(), "cache tier answers again");
        }
    }

    fn failed(&self, op: &'static str, key: Option<&Key>, error: &Error) {
        self.errors.fetch_add(1, SeqCst);
        let key = key.map_or("", |k| k.as_str());
        if self.failing.swap(true, SeqCst) {
            tracing::debug!(tier = self.tier.name(), op, key, %error, "cache tier failed again");
        } else {
            tracing::warn!(
                tier = self.tier.name(),
                op,
                key,
                %error,
                "cache tier failed; serving from the primary until it answers (further failures are logged at debug level)"
            );
        }
    }
}
