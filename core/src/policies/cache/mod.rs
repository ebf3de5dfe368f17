//! `CacheStorage`: a cache tier in front of a primary backend, the layer
//! behind the `PreferCache` policy.
//!
//! - [`CacheStorage`]: the [`Storage`](crate::Storage) that reads through
//!   the cache and writes through (or back) to the primary.
//! - [`CacheTier`]: where cached values live; [`LruCacheTier`] keeps them in
//!   process, bounded in bytes. Other tiers (Redis) implement the same trait.
//! - [`CacheOptions`]: capacity, TTL, largest entry and [`WriteMode`], with
//!   [`CacheConfig`], their form in the configuration file.
//!
//! # No stale fills
//!
//! A reader that misses reads the primary, then fills the cache; a write in
//! between must not let it cache the value the write replaced. Keys hash
//! onto [`STRIPES`] stripes, each with a generation, a count of writes in
//! flight and an async lock. A reader notes the generation before it reads
//! the primary and fills only, under the stripe's shared lock, if the
//! generation is unchanged and no write is in flight. A writer, under the
//! exclusive lock, counts itself in flight and bumps the generation, then
//! invalidates the key, calls the primary, and under the lock again installs
//! its value (or invalidates if another write overlapped), bumps the
//! generation and leaves. A fill therefore either lands before the writer's
//! first lock, and is invalidated, or checks after it and is dropped: once a
//! write returns, the cache holds nothing older. A write cancelled half-way
//! leaves the key invalidated.
//!
//! # Write-back
//!
//! With [`WriteMode::Back`]:
//! - `put` and `delete` record the new value (or a tombstone) in a dirty
//!   set and return; reads look at the dirty set first. `put` returns a
//!   provisional version (`wb-…`); the primary assigns its own when the
//!   value is flushed, so the version of an unchanged value changes once.
//!   Acknowledged writes not yet flushed are lost if the process dies, so
//!   the capabilities say `persistent: false`.
//! - The set holds at most `max_dirty_bytes` (values, keys, metadata and
//!   [`DIRTY_ENTRY_OVERHEAD_BYTES`] each): a writer that would pass the bound
//!   flushes the set and waits. If that flush fails and frees no room, the
//!   write fails with `Unavailable` and is not acknowledged.
//! - A flush writes each dirty entry to the primary (a few at a time), then
//!   updates the cache and forgets the entry unless it was written again
//!   meanwhile. An entry that fails stays dirty, readable, and is retried by
//!   the next flush: an acknowledged write is never dropped.
//! - Flushes happen on [`sync`](crate::Storage::sync) (which returns the
//!   flush error), on [`CacheStorage::shutdown`], every `flush_interval` once
//!   [`CacheStorage::spawn_flusher`] runs, when the set is full, and for the
//!   keys an operation needs in the primary: `batch` (then passed whole to
//!   the primary, so it stays all-or-nothing), `rename`, streamed `write`
//!   (which streams to the primary, never held in memory), a conditional
//!   `put` and a `put` too large for the set (these go to the primary as in
//!   write-through).
//! - `list` first flushes the dirty keys under its prefix, then lists the
//!   primary, so that listings show dirty keys (and a listing fails if that
//!   flush fails).
//! - Dropping a cache that still holds dirty entries logs an error: call
//!   [`CacheStorage::shutdown`] first.
//!
//! # Tier failures
//!
//! A tier error never fails an operation: it is logged (a warning when the
//! tier starts failing, debug messages while it keeps failing, a note when
//! it answers again) and counted ([`CacheStorage::tier_errors`]). A failed
//! lookup reads the primary; a failed fill is dropped; a key whose
//! invalidation failed bypasses the tier, retrying the invalidation on each
//! read, until one succeeds ([`CacheStorage::bypassed_keys`]; past
//! [`MAX_PENDING`] keys the whole tier is bypassed until it can be cleared).

mod coherence;
mod flush;
mod lru;
mod options;
mod policy;
#[cfg(feature = "redis")]
mod redis;
mod storage;
mod tier;
mod writeback;
mod writer;

pub use self::coherence::{MAX_PENDING, STRIPES};
pub use self::lru::{LruCacheTier, ENTRY_OVERHEAD_BYTES};
pub use self::options::{
    CacheConfig, CacheOptions, RedisUrls, TierConfig, WriteConfig, WriteMode, DEFAULT_CAPACITY_BYTES,
    DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_DIRTY_BYTES, MAX_ENTRY_CEILING_BYTES,
};
pub use self::policy::{PreferCache, PreferCacheConfig};
#[cfg(feature = "redis")]
pub use self::redis::{RedisCacheTier, RedisTierOptions};
pub use self::storage::{CacheStorage, STAT_FILL_LIMIT_BYTES};
pub use self::tier::{CacheTier, CachedValue};
pub use self::writeback::DIRTY_ENTRY_OVERHEAD_BYTES;
