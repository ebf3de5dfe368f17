//! Quotas (`[[quotas]]`): the bytes and keys under a prefix, counted when
//! the manager opens (one listing per quota) and kept in memory as
//! changes are made. A change that would pass a limit is refused whole
//! with [`ErrorKind::QuotaExceeded`], before anything is written; the
//! count needs nothing stored of its own, so a crash cannot make it drift.
//!
//! A change first reserves what it adds ([`Quotas::reserve`]); what it
//! frees is given back only once it succeeded ([`Reservation::commit`]),
//! and a change that fails gives its reservation back when dropped.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::QuotaConfig;
use crate::error::{Error, ErrorKind, Result};

/// What a quota counts now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    /// Bytes of values under the prefix.
    pub bytes: u64,
    /// Keys under the prefix.
    pub keys: u64,
}

/// One quota with its limits and what it counts, as reported by
/// [`StorageManager::quotas`](crate::StorageManager::quotas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The prefix counted (`""`: every key).
    pub prefix: String,
    /// Most bytes, if limited.
    pub max_bytes: Option<u64>,
    /// Most keys, if limited.
    pub max_keys: Option<u64>,
    /// What it counts now.
    pub used: Used,
}

impl std::fmt::Display for QuotaUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
        write!(
            f,
            "`{}`: {} of {} bytes, {} of {} keys",
            self.prefix,
            self.used.bytes,
            limit(self.max_bytes),
            self.used.keys,
            limit(self.max_keys)
        )
    }
}

#[derive(Debug)]
struct Quota {
    config: QuotaConfig,
    used: Mutex<Used>,
}

/// The quotas of one configuration; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    quotas: Vec<Quota>,
}

/// Bytes and keys a change adds to (or, negative, frees from) each quota.
type Deltas = Vec<(usize, i64, i64)>;

impl Quotas {
    /// Quotas of `config`, counting `usage` (by prefix) to start from.
    pub fn new(config: &[QuotaConfig], usage: impl Fn(&str) -> Option<Used>) -> Quotas {
        Quotas {
            quotas: config
                .iter()
                .map(|c| Quota { config: c.clone(), used: Mutex::new(usage(&c.prefix).unwrap_or_default()) })
                .collect(),
        }
    }

    /// Whether no quota is configured.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty()
    }

    /// Whether a quota counts `key`.
    pub fn covers(&self, key: &str) -> bool {
        self.quotas.iter().any(|q| key.starts_with(&q.config.prefix))
    }

    /// The usage of every quota.
    pub fn usage(&self) -> Vec<QuotaUsage> {
        self.quotas
            .iter()
            .map(|q| QuotaUsage {
                prefix: q.config.prefix.clone(),
                max_bytes: q.config.max_bytes,
                max_keys: q.config.max_keys,
                used: *q.used.lock(),
            })
            .collect()
    }

    /// The quota with the longest prefix counting `key`.
    pub fn innermost(&self, key: &str) -> Option<QuotaUsage> {
        self.usage().into_iter().filter(|q| key.starts_with(&q.prefix)).max_by_key(|q| q.prefix.len())
    }

    fn deltas(&self, changes: &[(&str, i64, i64)]) -> Deltas {
        let mut out: Deltas = Vec::new();
        for (i, q) in self.quotas.iter().enumerate() {
            let (mut bytes, mut keys) = (0, 0);
            for (key, b, k) in changes {
                if key.starts_with(&q.config.prefix) {
                    bytes += b;
                    keys += k;
                }
            }
            if bytes != 0 || keys != 0 {
                out.push((i, bytes, keys));
            }
        }
        out
    }

    /// Reserves what `changes` (key, bytes added, keys added; negative
    /// when freed) add, or refuses them all with `QuotaExceeded`.
    pub fn reserve(self: &Arc<Self>, changes: &[(&str, i64, i64)]) -> Result<Reservation> {
        let deltas = self.deltas(changes);
        let mut reservation = Reservation { quotas: self.clone(), reserved: Vec::new(), pending: Vec::new() };
        for (i, bytes, keys) in deltas {
            let (add_b, add_k) = (bytes.max(0) as u64, keys.max(0) as u64);
            self.take(i, add_b, add_k, changes.first().map_or("", |c| c.0))?;
            reservation.reserved.push((i, add_b, add_k));
            reservation.pending.push((i, bytes.min(0).unsigned_abs(), keys.min(0).unsigned_abs()));
        }
        Ok(reservation)
    }

    /// Whether what `changes` add would fit, without reserving it (a
    /// writer's early warning; the change itself reserves).
    pub fn check(&self, changes: &[(&str, i64, i64)]) -> Result<()> {
        for (i, bytes, keys) in self.deltas(changes) {
            let q = &self.quotas[i];
            let used = q.used.lock();
            Self::within(
                q,
                &used,
                bytes.max(0) as u64,
                keys.max(0) as u64,
                changes.first().map_or("", |c| c.0),
            )?;
        }
        Ok(())
    }

    /// Adds `bytes` and `keys` to quota `i` if within its limits.
    fn take(&self, i: usize, bytes: u64, keys: u64, key: &str) -> Result<()> {
        if bytes == 0 && keys == 0 {
            return Ok(());
        }
        let q = &self.quotas[i];
        let mut used = q.used.lock();
        Self::within(q, &used, bytes, keys, key)?;
        used.bytes += bytes;
        used.keys += keys;
        Ok(())
    }

    /// Refuses `bytes` and `keys` more where quota `q`, holding `used`, has no room.
    fn within(q: &Quota, used: &Used, bytes: u64, keys: u64, key: &str) -> Result<()> {
        let over_bytes = q.config.max_bytes.filter(|max| bytes > 0 && used.bytes + bytes > *max);
        let over_keys = q.config.max_keys.filter(|max| keys > 0 && used.keys + keys > *max);
        if over_bytes.is_some() || over_keys.is_some() {
            let what = match (over_bytes, over_keys) {
                (Some(max), _) => {
                    format!("{} bytes more would pass its {max} bytes (it holds {})", bytes, used.bytes)
                }
                (_, Some(max)) => {
                    format!("{keys} more key(s) would pass its {max} keys (it holds {})", used.keys)
                }
                _ => unreachable!(),
            };
            return Err(Error::new(
                ErrorKind::QuotaExceeded,
                format!("the quota of `{}`: {what}; free space there or raise the quota", q.config.prefix),
            )
            .with_key(key));
        }
        Ok(())
    }

    fn give_back(&self, i: usize, bytes: u64, keys: u64) {
        let mut used = self.quotas[i].used.lock();
        used.bytes = used.bytes.saturating_sub(bytes);
        used.keys = used.keys.saturating_sub(keys);
    }

    /// Frees what a change that succeeded took away (a delete).
    pub fn release(&self, key: &str, bytes: u64, keys: u64) {
        for (i, _, _) in self.deltas(&[(key, -(bytes as i64), -(keys as i64))]) {
            self.give_back(i, bytes, keys);
        }
    }
}

/// What a change reserved; see the module documentation.
#[derive(Debug)]
pub(crate) struct Reservation {
    quotas: Arc<Quotas>,
    /// Added to each quota now; given back if the change fails.
    reserved: Vec<(usize, u64, u64)>,
    /// Freed from each quota once the change succeeds.
    pending: Vec<(usize, u64, u64)>,
}

impl Reservation {
    /// Reserves `bytes` more for `key` (a streamed write that grew).
    pub fn grow(&mut self, key: &str, bytes: u64) -> Result<()> {
        for (i, _, _) in self.quotas.deltas(&[(key, bytes as i64, 0)]) {
            self.quotas.take(i, bytes, 0, key)?;
            self.reserved.push((i, bytes, 0));
        }
        Ok(())
    }

    /// Frees `bytes` of `key` once the change succeeds (a value that shrank).
    pub fn free_on_commit(&mut self, key: &str, bytes: u64) {
        for (i, _, _) in self.quotas.deltas(&[(key, -(bytes as i64), 0)]) {
            self.pending.push((i, bytes, 0));
        }
    }

    /// The change succeeded: what it freed is given back.
    pub fn commit(mut self) {
        for (i, bytes, keys) in std::mem::take(&mut self.pending) {
            self.quotas.give_back(i, bytes, keys);
        }
        self.reserved.clear();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (i, bytes, keys) in std::mem::take(&mut self.reserved) {
            self.quotas.give_back(i, bytes, keys);
        }
    }
}
