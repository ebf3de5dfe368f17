//! Per-thread operation counters: each thread adds to its own copy with
//! plain loads and stores (no atomic read-modify-write, no cache line
//! bouncing between cores), and a reader sums the copies.
//!
//! A counter is still an `AtomicU64`, so a reader summing while a thread
//! adds sees either the old or the new value, never a torn one. Only the
//! thread owning a copy writes it ([`thread_local::ThreadLocal`] hands each
//! live thread its own); a thread that exits leaves its copy, with its
//! counts, to the next thread given its id, so no count is lost.

use std::sync::atomic::{AtomicU64, Ordering};

use thread_local::ThreadLocal;

use crate::storage::Operation as Op;

/// The counts of one operation, as one thread saw them.
#[derive(Debug, Default)]
pub(super) struct Counts {
    count: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// One thread's counts of every operation, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ThreadCounts([Counts; Op::ALL.len()]);

/// Counts of every operation of one backend, kept per thread.
#[derive(Debug, Default)]
pub(super) struct OpCounts {
    threads: ThreadLocal<ThreadCounts>,
}

/// Adds `n` to a counter only the calling thread writes.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Counts {
    /// Counts one call made by the thread owning these counts.
    #[inline]
    pub fn call(&self, ok: bool, bytes_in: u64, bytes_out: u64) {
        add(&self.count, 1);
        if !ok {
            add(&self.errors, 1);
        }
        if bytes_in > 0 {
            add(&self.bytes_in, bytes_in);
        }
        if bytes_out > 0 {
            add(&self.bytes_out, bytes_out);
        }
    }

    /// How many calls these counts hold.
    #[inline]
    pub fn calls(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl OpCounts {
    /// This thread's counts of `op`: only this thread writes them.
    #[inline]
    pub fn mine(&self, op: Op) -> &Counts {
        &self.threads.get_or_default().0[op as usize]
    }

    /// Adds bytes moved after the call that counted them (streams).
    pub fn add_bytes(&self, op: Op, bytes_in: u64, bytes_out: u64) {
        let mine = self.mine(op);
        add(&mine.bytes_in, bytes_in);
        add(&mine.bytes_out, bytes_out);
    }

    /// The totals of `op` over every thread: (count, errors, bytes in, bytes out).
    pub fn total(&self, op: Op) -> (u64, u64, u64, u64) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.threads.iter().map(|t| &t.0[op as usize]).fold((0, 0, 0, 0), |acc, c| {
            (
                acc.0 + load(&c.count),
                acc.1 + load(&c.errors),
                acc.2 + load(&c.bytes_in),
                acc.3 + load(&c.bytes_out),
            )
        })
    }
}

/// Counters of events (cache hits, repairs, ...), `N` of them, kept per
/// thread like [`OpCounts`].
#[derive(Debug, Default)]
pub(super) struct EventCounts<const N: usize> {
    threads: ThreadLocal<ThreadEvents<N>>,
}

#[derive(Debug)]
#[repr(align(64))]
struct ThreadEvents<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for ThreadEvents<N> {
    fn default() -> Self {
        ThreadEvents(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> EventCounts<N> {
    /// Counts one event `event` on this thread.
    #[inline]
    pub fn count(&self, event: usize) {
        add(&self.threads.get_or_default().0[event], 1);
    }

    /// The total of `event` over every thread.
    pub fn total(&self, event: usize) -> u64 {
        self.threads.iter().map(|t| t.0[event].load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counts = Arc::new(OpCounts::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counts.mine(Op::Get).call(i % 2 == 0, 0, 3);
                    }
                    counts.add_bytes(Op::Write, 5, 0);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counts.total(Op::Get), (80_000, 40_000, 0, 240_000));
        assert_eq!(counts.total(Op::Write), (0, 0, 40, 0));
        assert_eq!(counts.total(Op::Put), (0, 0, 0, 0));
    }

    #[test]
    fn a_thread_that_exits_keeps_its_counts() {
        let counts = Arc::new(OpCounts::default());
        for _ in 0..3 {
            let counts = counts.clone();
            std::thread::spawn(move || counts.mine(Op::Put).call(true, 10, 0)).join().unwrap();
        }
        counts.mine(Op::Put).call(true, 10, 0);
        assert_eq!(counts.total(Op::Put), (4, 0, 40, 0));
    }

    #[test]
    fn events_from_many_threads_add_up() {
        let events = Arc::new(EventCounts::<3>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let events = events.clone();
                std::thread::spawn(move || (0..1_000).for_each(|_| events.count(1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        events.count(2);
        assert_eq!([events.total(0), events.total(1), events.total(2)], [0, 4_000, 1]);
    }
}
