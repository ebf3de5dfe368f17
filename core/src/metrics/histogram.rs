use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets in microseconds: powers of four from
/// 1 µs to about 67 s. A last, implicit bucket holds everything slower.
pub const BUCKET_BOUNDS_US: [u64; 14] =
    [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864];

/// A lock-free latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, latency: Duration) {
        self.record_weighted(latency, 1);
    }

    /// Records one observation standing for `weight` alike (a sample of
    /// one call in `weight`).
    pub fn record_weighted(&self, latency: Duration, weight: u64) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKET_BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(BUCKET_BOUNDS_US.len());
        self.buckets[i].fetch_add(weight, Ordering::Relaxed);
        self.count.fetch_add(weight, Ordering::Relaxed);
        self.sum_us.fetch_add(us.saturating_mul(weight), Ordering::Relaxed);
    }

    /// The counts at this moment.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Histogram counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub buckets: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Sum of observations in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Upper bound (µs) of the bucket holding quantile `q` (0 to 1), or
    /// `None` when empty or beyond the last bound.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let target = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return BUCKET_BOUNDS_US.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::default();
        for us in [0, 1, 3, 100, 100, 100, 5_000_000, 100_000_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 8);
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[4], 3);
        assert_eq!(*s.buckets.last().unwrap(), 1);
        assert_eq!(s.quantile_bound_us(0.5), Some(256));
        assert_eq!(s.quantile_bound_us(1.0), None);
    }
}
