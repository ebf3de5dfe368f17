//! `CacheOptions`: the settings of a [`CacheStorage`](super::CacheStorage),
//! and `CacheConfig`, their form in the configuration file.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// Default cache capacity: 256 MiB.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 * MIB;
/// The default largest cached value never exceeds this: 16 MiB.
pub const MAX_ENTRY_CEILING_BYTES: u64 = 16 * MIB;
/// Default bound of the write-back dirty set: 64 MiB.
pub const DEFAULT_MAX_DIRTY_BYTES: u64 = 64 * MIB;
/// Default interval of the write-back flusher: 1 s.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How writes reach the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Every write goes to the primary before it is acknowledged; the cache
    /// is updated or invalidated afterwards. Nothing is lost in a crash.
    #[default]
    Through,
    /// `put` and `delete` are acknowledged once held in a bounded dirty set
    /// and reach the primary later: on [`sync`](crate::Storage::sync), on
    /// [`shutdown`](super::CacheStorage::shutdown), by the timer of
    /// [`spawn_flusher`](super::CacheStorage::spawn_flusher), or when the
    /// set is full. Acknowledged writes not yet flushed are lost if the
    /// process dies.
    Back {
        /// Most bytes held dirty (values, keys and bookkeeping); a writer that
        /// would pass it flushes first (default [`DEFAULT_MAX_DIRTY_BYTES`]).
        max_dirty_bytes: u64,
        /// Period of the flusher task (default [`DEFAULT_FLUSH_INTERVAL`]).
        flush_interval: Duration,
    },
}

impl WriteMode {
    /// Write-back with the default bound and interval.
    pub fn back() -> Self {
        WriteMode::Back { max_dirty_bytes: DEFAULT_MAX_DIRTY_BYTES, flush_interval: DEFAULT_FLUSH_INTERVAL }
    }
}

/// Settings of a [`CacheStorage`](super::CacheStorage) and its
/// [`LruCacheTier`](super::LruCacheTier).
///
/// Defaults: 256 MiB capacity, no TTL, values up to 16 MiB cached (1/16 of
/// the capacity, at most 16 MiB), write-through.
///
/// ```
/// use std::time::Duration;
/// use tierfs_core::policies::cache::{CacheOptions, WriteMode};
///
/// let options = CacheOptions {
///     ttl: Some(Duration::from_secs(30)),
///     write_mode: WriteMode::back(),
///     ..CacheOptions::with_capacity(64 << 20)
/// };
/// assert_eq!(options.max_entry_bytes, 4 << 20);
/// options.validate()?;
/// # Ok::<_, tierfs_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most bytes the cache tier holds, counting values, keys, metadata and
    /// a fixed overhead per entry (default [`DEFAULT_CAPACITY_BYTES`]).
    pub capacity_bytes: u64,
    /// How long an entry may be served after it was cached (default: no limit).
    pub ttl: Option<Duration>,
    /// Larger values are never cached; reads of them go to the primary
    /// (default: [`CacheOptions::default_max_entry_bytes`] of the capacity).
    pub max_entry_bytes: u64,
    /// Write-through (default) or write-back.
    pub write_mode: WriteMode,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions::with_capacity(DEFAULT_CAPACITY_BYTES)
    }
}

impl CacheOptions {
    /// Default options with another capacity (and the largest entry derived from it).
    pub fn with_capacity(capacity_bytes: u64) -> Self {
        CacheOptions {
            capacity_bytes,
            ttl: None,
            max_entry_bytes: Self::default_max_entry_bytes(capacity_bytes),
            write_mode: WriteMode::Through,
        }
    }

    /// The default largest cached value for a capacity: 1/16 of it, at
    /// least 1 byte, at most [`MAX_ENTRY_CEILING_BYTES`].
    pub fn default_max_entry_bytes(capacity_bytes: u64) -> u64 {
        (capacity_bytes / 16).clamp(1, MAX_ENTRY_CEILING_BYTES)
    }

    /// Checks every setting; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.capacity_bytes == 0 {
            return Err(invalid("capacity_bytes", "is 0; allowed: at least 1 byte"));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.capacity_bytes {
            return Err(invalid(
                "max_entry_bytes",
                &format!(
                    "is {}; allowed: 1 to capacity_bytes ({})",
                    self.max_entry_bytes, self.capacity_bytes
                ),
            ));
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err(invalid("ttl", "is 0; allowed: more than 0, or None for no expiry"));
        }
        if let WriteMode::Back { max_dirty_bytes, flush_interval } = self.write_mode {
            if max_dirty_bytes == 0 {
                return Err(invalid("write_mode.max_dirty_bytes", "is 0; allowed: at least 1 byte"));
            }
            if flush_interval.is_zero() {
                return Err(invalid("write_mode.flush_interval", "is 0; allowed: more than 0"));
            }
        }
        Ok(())
    }

    /// Options from the `cache` table of a `prefer_cache` policy (see
    /// [`CacheConfig`]): parsed, checked, converted.
    ///
    /// ```
    /// use tierfs_core::policies::cache::{CacheOptions, WriteMode};
    ///
    /// let table: toml::Table = toml::from_str("capacity_mib = 64\nwrite = \"back\"\n").unwrap();
    /// let options = CacheOptions::from_table(&table)?;
    /// assert_eq!(options.capacity_bytes, 64 << 20);
    /// assert_eq!(options.write_mode, WriteMode::back());
    ///
    /// let bad: toml::Table = toml::from_str("capacity_mib = 0").unwrap();
    /// let err = CacheOptions::from_table(&bad).unwrap_err();
    /// assert!(err.to_string().contains("cache.capacity_mib"), "{err}");
    /// # Ok::<_, tierfs_core::Error>(())
    /// ```
    pub fn from_table(table: &toml::Table) -> Result<Self> {
        let config: CacheConfig = table.clone().try_into().map_err(|e| {
            Error::new(ErrorKind::Config, format!("cache settings: {}", e.to_string().trim_end()))
        })?;
        config.to_options()
    }
}

fn invalid(field: &str, message: &str) -> Error {
    Error::new(ErrorKind::Config, format!("cache option `{field}` {message}"))
}

/// The write mode as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteConfig {
    /// [`WriteMode::Through`].
    Through,
    /// [`WriteMode::Back`].
    Back,
}

/// The `cache` table of a `prefer_cache` policy in the configuration file.
/// Every field is optional; unknown fields are refused.
///
/// ```toml
/// [policy]
/// type = "prefer_cache"
/// primary = "main"
/// cache = { capacity_mib = 256, ttl_secs = 60, max_entry_kib = 4096, write = "back", max_dirty_mib = 64, flush_interval_ms = 1000 }
/// ```
///
/// | field | unit | allowed | default |
/// |---|---|---|---|
/// | `capacity_mib` | MiB | 1 to 1048576 | 256 |
/// | `ttl_secs` | s | 1 to 31536000 | none (no expiry) |
/// | `max_entry_kib` | KiB | 1 to the capacity | 1/16 of the capacity, at most 16 MiB |
/// | `write` | | `"through"`, `"back"` | `"through"` |
/// | `max_dirty_mib` | MiB | 1 to 65536, `write = "back"` only | 64 |
/// | `flush_interval_ms` | ms | 1 to 3600000, `write = "back"` only | 1000 |
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Capacity in MiB.
    pub capacity_mib: Option<u64>,
    /// Time to live of an entry in seconds.
    pub ttl_secs: Option<u64>,
    /// Largest cached value in KiB.
    pub max_entry_kib: Option<u64>,
    /// `"through"` or `"back"`.
    pub write: Option<WriteConfig>,
    /// Bound of the dirty set in MiB (write-back).
    pub max_dirty_mib: Option<u64>,
    /// Period of the flusher in milliseconds (write-back).
    pub flush_interval_ms: Option<u64>,
    /// Where entries live: `"lru"` (in process, default) or `"redis"`.
    pub tier: Option<TierConfig>,
    /// Redis URL(s) (`redis://host:port`), one or a list of cluster nodes.
    pub redis_url: Option<RedisUrls>,
    /// Whether the Redis URLs are nodes of a Redis Cluster (default false).
    pub redis_cluster: Option<bool>,
    /// Prefix of the Redis keys (default `tierfs:`).
    pub redis_key_prefix: Option<String>,
    /// Bound of every Redis call in milliseconds (default 250).
    pub redis_timeout_ms: Option<u64>,
}

/// The tier as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierConfig {
    /// [`LruCacheTier`](super::LruCacheTier).
    Lru,
    /// `RedisCacheTier`.
    Redis,
}

/// One Redis URL or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RedisUrls {
    /// One URL.
    One(String),
    /// Several (cluster nodes).
    Many(Vec<String>),
}

/// Checks that an optional `value` of `field` lies in `min..=max`.
fn in_range(field: &str, value: Option<u64>, min: u64, max: u64, unit: &str) -> Result<()> {
    match value {
        Some(v) if v < min || v > max => Err(Error::new(
            ErrorKind::Config,
            format!("`cache.{field}` = {v} is out of range; allowed: {min} to {max} ({unit})"),
        )),
        _ => Ok(()),
    }
}

impl CacheConfig {
    /// Checks every field; the error names the field (`cache.NAME`) and the
    /// allowed range.
    pub fn validate(&self) -> Result<()> {
        in_range("capacity_mib", self.capacity_mib, 1, 1 << 20, "MiB")?;
        in_range("ttl_secs", self.ttl_secs, 1, 365 * 24 * 3600, "seconds; omit it for no expiry")?;
        let capacity_kib = self.capacity_mib.map_or(DEFAULT_CAPACITY_BYTES / KIB, |m| m * 1024);
        in_range("max_entry_kib", self.max_entry_kib, 1, capacity_kib, "KiB, at most the capacity")?;
        in_range("max_dirty_mib", self.max_dirty_mib, 1, 1 << 16, "MiB")?;
        in_range("flush_interval_ms", self.flush_interval_ms, 1, 3_600_000, "milliseconds")?;
        in_range("redis_timeout_ms", self.redis_timeout_ms, 1, 60_000, "milliseconds")?;
        if self.tier == Some(TierConfig::Redis) {
            if self.redis_url.is_none() {
                return Err(Error::new(ErrorKind::Config, "`cache.redis_url` is required with `tier = \"redis\"`; write it like redis://127.0.0.1:6379"));
            }
        } else {
            for (field, set) in [
                ("redis_url", self.redis_url.is_some()),
                ("redis_cluster", self.redis_cluster.is_some()),
                ("redis_key_prefix", self.redis_key_prefix.is_some()),
                ("redis_timeout_ms", self.redis_timeout_ms.is_some()),
            ] {
                if set {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "`cache.{field}` applies only to `tier = \"redis\"`; set it or remove the field"
                        ),
                    ));
                }
            }
        }
        if self.write != Some(WriteConfig::Back) {
            for (field, set) in [
                ("max_dirty_mib", self.max_dirty_mib.is_some()),
                ("flush_interval_ms", self.flush_interval_ms.is_some()),
            ] {
                if set {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "`cache.{field}` applies only to write-back; set `write = \"back\"` or remove it"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The options these settings describe, after [`validate`](Self::validate).
    pub fn to_options(&self) -> Result<CacheOptions> {
        self.validate()?;
        let capacity_bytes = self.capacity_mib.map_or(DEFAULT_CAPACITY_BYTES, |m| m * MIB);
        let write_mode = match self.write.unwrap_or(WriteConfig::Through) {
            WriteConfig::Through => WriteMode::Through,
            WriteConfig::Back => WriteMode::Back {
                max_dirty_bytes: self.max_dirty_mib.map_or(DEFAULT_MAX_DIRTY_BYTES, |m| m * MIB),
                flush_interval: self.flush_interval_ms.map_or(DEFAULT_FLUSH_INTERVAL, Duration::from_millis),
            },
        };
        let options = CacheOptions {
            capacity_bytes,
            ttl: self.ttl_secs.map(Duration::from_secs),
            max_entry_bytes: self
                .max_entry_kib
                .map_or(CacheOptions::default_max_entry_bytes(capacity_bytes), |k| k * KIB),
            write_mode,
        };
        options.validate()?;
        Ok(options)
    }
}

impl CacheConfig {
    /// The tier this configuration asks for.
    pub fn build_tier(
        &self,
        options: &CacheOptions,
        metrics: std::sync::Arc<crate::metrics::StorageMetrics>,
    ) -> Result<std::sync::Arc<dyn super::CacheTier>> {
        match self.tier.unwrap_or(TierConfig::Lru) {
            TierConfig::Lru => Ok(std::sync::Arc::new(super::LruCacheTier::new(options, metrics))),
            #[cfg(not(feature = "redis"))]
            TierConfig::Redis => Err(Error::new(
                ErrorKind::Config,
                "`cache.tier = \"redis\"`: this build of TierFS has no Redis tier; build tierfs-core with the \
                 `redis` feature (on by default) or use `tier = \"lru\"`",
            )),
            #[cfg(feature = "redis")]
            TierConfig::Redis => {
                let urls = match &self.redis_url {
                    Some(RedisUrls::One(u)) => vec![u.clone()],
                    Some(RedisUrls::Many(v)) => v.clone(),
                    None => Vec::new(),
                };
                let tier = super::RedisCacheTier::new(super::RedisTierOptions {
                    cluster: self.redis_cluster.unwrap_or(urls.len() > 1),
                    urls,
                    key_prefix: self.redis_key_prefix.clone().unwrap_or_else(|| "tierfs:".into()),
                    ttl: options.ttl,
                    max_entry_bytes: options.max_entry_bytes,
                    timeout: Duration::from_millis(self.redis_timeout_ms.unwrap_or(250)),
                })?;
                Ok(tier)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CacheOptions> {
        let table: toml::Table = toml::from_str(text).expect("test TOML");
        CacheOptions::from_table(&table)
    }

    #[test]
    fn defaults() {
        let o = CacheOptions::default();
        assert_eq!(o.capacity_bytes, 256 << 20);
        assert_eq!(o.max_entry_bytes, 16 << 20);
        assert_eq!(o.ttl, None);
        assert_eq!(o.write_mode, WriteMode::Through);
        assert_eq!(parse("").unwrap(), o);
        assert_eq!(CacheOptions::with_capacity(16 << 20).max_entry_bytes, 1 << 20);
        assert_eq!(CacheOptions::with_capacity(4).max_entry_bytes, 1);
        o.validate().unwrap();
    }

    #[test]
    fn full_config() {
        let o = parse(
            "capacity_mib = 32\nttl_secs = 5\nmax_entry_kib = 512\nwrite = \"back\"\nmax_dirty_mib = 8\nflush_interval_ms = 250\n",
        )
        .unwrap();
        assert_eq!(
            o,
            CacheOptions {
                capacity_bytes: 32 << 20,
                ttl: Some(Duration::from_secs(5)),
                max_entry_bytes: 512 << 10,
                write_mode: WriteMode::Back {
                    max_dirty_bytes: 8 << 20,
                    flush_interval: Duration::from_millis(250)
                },
            }
        );
    }

    #[test]
    fn errors_name_the_field_and_range() {
        for (text, field, range) in [
            ("capacity_mib = 0", "cache.capacity_mib", "1 to 1048576"),
            ("ttl_secs = 0", "cache.ttl_secs", "1 to 31536000"),
            ("capacity_mib = 1\nmax_entry_kib = 2048", "cache.max_entry_kib", "1 to 1024"),
            ("write = \"back\"\nmax_dirty_mib = 0", "cache.max_dirty_mib", "1 to 65536"),
            ("write = \"back\"\nflush_interval_ms = 0", "cache.flush_interval_ms", "1 to 3600000"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            let msg = e.to_string();
            assert!(msg.contains(field) && msg.contains(range), "{text}: {msg}");
        }
        let e = parse("max_dirty_mib = 4").unwrap_err();
        assert!(
            e.to_string().contains("write = \\\"back\\\"") || e.to_string().contains("write-back"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_and_values_refused() {
        let e = parse("capacity_mb = 4").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("capacity_mb"), "{e}");
        let e = parse("write = \"sideways\"").unwrap_err();
        assert!(e.to_string().contains("sideways") || e.to_string().contains("through"), "{e}");
    }

    #[test]
    fn options_validate_names_fields() {
        let o = CacheOptions { max_entry_bytes: 0, ..CacheOptions::default() };
        assert!(o.validate().unwrap_err().to_string().contains("max_entry_bytes"));
        let o = CacheOptions { ttl: Some(Duration::ZERO), ..CacheOptions::default() };
        assert!(o.validate().unwrap_err().to_string().contains("ttl"));
        let o = CacheOptions {
            write_mode: WriteMode::Back { max_dirty_bytes: 1, flush_interval: Duration::ZERO },
            ..CacheOptions::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("flush_interval"));
    }
}
