//! `StorageMetrics`: counts, errors, bytes and latency per backend and per
//! operation, cache hits and misses, repairs and migrations.
//!
//! Recording is lock-free: counts and bytes are kept per thread, so a call
//! adds to them with plain stores (no atomic read-modify-write shared by
//! every core), and latency histograms are atomics. A [`MetricsSnapshot`]
//! sums the counters at one moment and renders them in the Prometheus text format.
//!
//! ```
//! use std::time::Duration;
//! use tierfs_core::metrics::StorageMetrics;
//! use tierfs_core::Operation as Op;
//!
//! let metrics = StorageMetrics::new();
//! let main = metrics.backend("main");
//! main.record(Op::Get, Duration::from_micros(40), true, 0, 4096);
//! metrics.cache_hit();
//! let snap = metrics.snapshot();
//! assert_eq!(snap.backends["main"]["get"].count, 1);
//! assert!(snap.to_prometheus().contains("tierfs_operations_total{backend=\"main\",op=\"get\"} 1"));
//! ```

mod counts;
mod histogram;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

pub use histogram::{Histogram, HistogramSnapshot, BUCKET_BOUNDS_US};

use crate::storage::Operation as Op;

/// Calls answered without waiting are timed one in this many on each
/// thread (see [`BackendMetrics::start_now`]); every other call is timed.
pub const SAMPLE_EVERY: u64 = 64;

/// Counters of one backend.
#[derive(Debug, Default)]
pub struct BackendMetrics {
    counts: counts::OpCounts,
    latency: [Histogram; Op::ALL.len()],
}

impl BackendMetrics {
    /// Records one call of `op`: its latency, success, bytes written to
    /// the backend (`bytes_in`) and read from it (`bytes_out`).
    pub fn record(&self, op: Op, latency: Duration, ok: bool, bytes_in: u64, bytes_out: u64) {
        self.counts.mine(op).call(ok, bytes_in, bytes_out);
        self.latency[op as usize].record(latency);
    }

    /// Starts recording a call of `op` answered without waiting
    /// ([`Storage::get_now`](crate::Storage::get_now)); the call counts
    /// when [`NowCall::finish`] is called. Such calls take about 100 ns,
    /// and reading the clock twice and filling the histogram would cost
    /// half as much again, so one call in [`SAMPLE_EVERY`] on each thread
    /// is timed, and stands for that many in the latency histogram.
    /// Counts, errors and bytes are exact.
    #[inline]
    pub fn start_now(&self, op: Op) -> NowCall<'_> {
        let counts = self.counts.mine(op);
        let start = (counts.calls() % SAMPLE_EVERY == 0).then(quanta::Instant::now);
        NowCall { counts, latency: &self.latency[op as usize], start }
    }

    /// Adds bytes moved by a stream after the call that opened it.
    pub fn add_bytes(&self, op: Op, bytes_in: u64, bytes_out: u64) {
        self.counts.add_bytes(op, bytes_in, bytes_out);
    }

    /// The counters of `op` at this moment.
    fn snapshot(&self, op: Op) -> OpSnapshot {
        let (count, errors, bytes_in, bytes_out) = self.counts.total(op);
        OpSnapshot { count, errors, bytes_in, bytes_out, latency: self.latency[op as usize].snapshot() }
    }
}

/// A call answered without waiting, being recorded (see
/// [`BackendMetrics::start_now`]). Dropped without [`NowCall::finish`], it
/// records nothing.
#[derive(Debug)]
pub struct NowCall<'a> {
    counts: &'a counts::Counts,
    latency: &'a Histogram,
    start: Option<quanta::Instant>,
}

impl NowCall<'_> {
    /// Records the call: its success and bytes written to the backend
    /// (`bytes_in`) and read from it (`bytes_out`).
    #[inline]
    pub fn finish(self, ok: bool, bytes_in: u64, bytes_out: u64) {
        self.counts.call(ok, bytes_in, bytes_out);
        if let Some(start) = self.start {
            self.latency.record_weighted(start.elapsed(), SAMPLE_EVERY);
        }
    }
}

/// All metrics of one manager (or of whoever records into it).
#[derive(Debug, Default)]
pub struct StorageMetrics {
    backends: RwLock<BTreeMap<String, Arc<BackendMetrics>>>,
    /// Indexed by the `EVENT_*` constants.
    events: counts::EventCounts<EVENTS>,
}

const EVENT_CACHE_HIT: usize = 0;
const EVENT_CACHE_MISS: usize = 1;
const EVENT_CACHE_EVICTION: usize = 2;
const EVENT_REPAIR: usize = 3;
const EVENT_MIGRATION: usize = 4;
const EVENT_RETRY: usize = 5;
const EVENTS: usize = 6;

macro_rules! counter {
    ($name:ident, $event:ident, $doc:literal) => {
        #[doc = $doc]
        #[inline]
        pub fn $name(&self) {
            self.events.count($event);
        }
    };
}

impl StorageMetrics {
    /// Empty metrics.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The counters of backend `name`, created on first use.
    pub fn backend(&self, name: &str) -> Arc<BackendMetrics> {
        if let Some(m) = self.backends.read().get(name) {
            return m.clone();
        }
        self.backends.write().entry(name.to_owned()).or_default().clone()
    }

    counter!(cache_hit, EVENT_CACHE_HIT, "Counts a read served by a cache.");
    counter!(cache_miss, EVENT_CACHE_MISS, "Counts a read a cache could not serve.");
    counter!(cache_eviction, EVENT_CACHE_EVICTION, "Counts an entry evicted from a cache.");
    counter!(repair, EVENT_REPAIR, "Counts a stale or missing copy repaired.");
    counter!(migration, EVENT_MIGRATION, "Counts a key moved between tiers.");
    counter!(retry, EVENT_RETRY, "Counts a call retried after a retryable error.");

    /// The counters at this moment.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let backends = self
            .backends
            .read()
            .iter()
            .map(|(name, m)| {
                let ops = Op::ALL
                    .iter()
                    .map(|op| (op.as_str(), m.snapshot(*op)))
                    .filter(|(_, s)| s.count > 0)
                    .collect();
                (name.clone(), ops)
            })
            .collect();
        let total = |event| self.events.total(event);
        MetricsSnapshot {
            backends,
            traffic: BTreeMap::new(),
            cache_hits: total(EVENT_CACHE_HIT),
            cache_misses: total(EVENT_CACHE_MISS),
            cache_evictions: total(EVENT_CACHE_EVICTION),
            repairs: total(EVENT_REPAIR),
            migrations: total(EVENT_MIGRATION),
            retries: total(EVENT_RETRY),
        }
    }
}

/// Counters of one operation at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSnapshot {
    /// Calls.
    pub count: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Bytes written to the backend.
    pub bytes_in: u64,
    /// Bytes read from the backend.
    pub bytes_out: u64,
    /// Latency distribution.
    pub latency: HistogramSnapshot,
}

/// Bytes a backend moved over the network: request bodies sent, response
/// bodies received (see [`Storage::traffic`](crate::storage::Storage::traffic)).
/// Unlike [`OpSnapshot::bytes_in`], which counts the bytes callers gave,
/// this is what crossed the wire: a one-byte patch of a large object on an
/// object store sends the parts it rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes of request bodies sent.
    pub sent: u64,
    /// Bytes of response bodies received.
    pub received: u64,
}

/// Every counter at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Per backend, per operation (operations never called are left out).
    pub backends: BTreeMap<String, BTreeMap<&'static str, OpSnapshot>>,
    /// Per backend that talks to a remote store, the bytes it moved; filled
    /// by [`StorageManager::metrics`](crate::StorageManager::metrics).
    pub traffic: BTreeMap<String, Traffic>,
    /// Reads served by a cache.
    pub cache_hits: u64,
    /// Reads a cache could not serve.
    pub cache_misses: u64,
    /// Entries evicted from caches.
    pub cache_evictions: u64,
    /// Stale or missing copies repaired.
    pub repairs: u64,
    /// Keys moved between tiers.
    pub migrations: u64,
    /// Calls retried.
    pub retries: u64,
}

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&OpSnapshot) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (backend, ops) in &self.backends {
                for (op, s) in ops {
                    let _ =
                        writeln!(out, "{name}{{backend=\"{}\",op=\"{op}\"}} {}", escape(backend), value(s));
                }
            }
        };
        family("tierfs_operations_total", "counter", "Storage operations by backend and operation.", &|s| {
            s.count
        });
        family("tierfs_errors_total", "counter", "Failed storage operations.", &|s| s.errors);
        family("tierfs_bytes_in_total", "counter", "Bytes written to backends.", &|s| s.bytes_in);
        family("tierfs_bytes_out_total", "counter", "Bytes read from backends.", &|s| s.bytes_out);

        let name = "tierfs_operation_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Latency of storage operations.\n# TYPE {name} histogram");
        for (backend, ops) in &self.backends {
            for (op, s) in ops {
                let labels = format!("backend=\"{}\",op=\"{op}\"", escape(backend));
                let mut cumulative = 0;
                for (bound, count) in BUCKET_BOUNDS_US.iter().zip(&s.latency.buckets) {
                    cumulative += count;
                    let le = *bound as f64 / 1e6;
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.latency.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.latency.sum_us as f64 / 1e6);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.latency.count);
            }
        }
        if !self.traffic.is_empty() {
            for (name, help, received) in [
                ("tierfs_network_sent_bytes_total", "Bytes of request bodies sent to remote stores.", false),
                (
                    "tierfs_network_received_bytes_total",
                    "Bytes of response bodies received from remote stores.",
                    true,
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (backend, t) in &self.traffic {
                    let value = if received { t.received } else { t.sent };
                    let _ = writeln!(out, "{name}{{backend=\"{}\"}} {value}", escape(backend));
                }
            }
        }
        for (name, help, value) in [
            ("tierfs_cache_hits_total", "Reads served by a cache.", self.cache_hits),
            ("tierfs_cache_misses_total", "Reads a cache could not serve.", self.cache_misses),
            ("tierfs_cache_evictions_total", "Entries evicted from caches.", self.cache_evictions),
            ("tierfs_repairs_total", "Stale or missing copies repaired.", self.repairs),
            ("tierfs_migrations_total", "Keys moved between tiers.", self.migrations),
            ("tierfs_retries_total", "Calls retried after a retryable error.", self.retries),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_exported_per_backend_when_known() {
        let metrics = StorageMetrics::new();
        metrics.backend("local").record(Op::Put, Duration::from_micros(5), true, 10, 0);
        let mut snap = metrics.snapshot();
        assert!(!snap.to_prometheus().contains("tierfs_network"), "no remote backend, no traffic family");
        snap.traffic.insert("cluster".into(), Traffic { sent: 5 << 20, received: 4096 });
        let text = snap.to_prometheus();
        assert!(text.contains("tierfs_network_sent_bytes_total{backend=\"cluster\"} 5242880"), "{text}");
        assert!(text.contains("tierfs_network_received_bytes_total{backend=\"cluster\"} 4096"), "{text}");
        assert!(text.contains("# TYPE tierfs_network_sent_bytes_total counter"), "{text}");
    }
}
