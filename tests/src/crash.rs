//! The workload of the crash test, generated from a seed so that the child
//! that writes and the parent that checks agree on every operation.

use std::collections::BTreeMap;

/// A value: pattern seed and length (see [`crate::data::pattern`]).
pub type Value = (u64, u64);

/// One operation of the workload.
#[derive(Debug, Clone)]
pub enum CrashOp {
    /// `put` of a value.
    Put(String, Value),
    /// A streamed `write` of a value.
    Stream(String, Value),
    /// `delete`.
    Delete(String),
    /// An atomic batch of puts (`Some`) and deletes (`None`).
    Batch(Vec<(String, Option<Value>)>),
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn size(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=5 => rng.below(200),
        6 | 7 => 4096,
        8 => 300 * 1024 + rng.below(1000),
        _ => (1 << 20) + rng.below(100_000),
    }
}

/// The `index`-th operation of the workload of `seed`.
pub fn op(seed: u64, index: u64) -> CrashOp {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let key = |rng: &mut Rng| format!("k/{}", rng.below(40));
    let value_seed = index * 100;
    match rng.below(10) {
        0..=4 => {
            let k = key(&mut rng);
            CrashOp::Put(k, (value_seed, size(&mut rng)))
        }
        5 => {
            let k = key(&mut rng);
            CrashOp::Stream(k, (value_seed, size(&mut rng)))
        }
        6 => CrashOp::Delete(key(&mut rng)),
        _ => {
            let n = 2 + rng.below(5);
            let mut ops = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for j in 0..n {
                let k = key(&mut rng);
                if !seen.insert(k.clone()) {
                    continue;
                }
                let value = if rng.below(4) == 0 { None } else { Some((value_seed + j, size(&mut rng))) };
                ops.push((k, value));
            }
            CrashOp::Batch(ops)
        }
    }
}

/// Applies `op` to a model of the store.
pub fn apply(state: &mut BTreeMap<String, Value>, op: &CrashOp) {
    match op {
        CrashOp::Put(k, v) | CrashOp::Stream(k, v) => {
            state.insert(k.clone(), *v);
        }
        CrashOp::Delete(k) => {
            state.remove(k);
        }
        CrashOp::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => state.insert(k.clone(), *v),
                    None => state.remove(k),
                };
            }
        }
    }
}
