//! The workload of the crash test, generated from a seed so that the child
//! that writes and the parent that checks agree on every operation.

use std::collections::BTreeMap;

use bytes::Bytes;
use tierfs_core::{BatchOp, Condition, ErrorKind, Key, LocalStorage, Patch, PutOptions, Storage};

use crate::data::pattern;

/// A value: pattern seed and length (see [`crate::data::pattern`]).
pub type Value = (u64, u64);

/// What the store should hold: each key's bytes.
pub type Model = BTreeMap<String, Vec<u8>>;

/// A `patch`: an optional new length, then writes of pattern values at
/// offsets. A patch of a missing key fails with `NotFound` and changes
/// nothing.
#[derive(Debug, Clone)]
pub struct PatchSpec {
    /// The length set before the writes.
    pub set_len: Option<u64>,
    /// Writes: offset and value.
    pub writes: Vec<(u64, Value)>,
}

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
    /// A `patch` of part of a value.
    Patch(String, PatchSpec),
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
    match rng.below(13) {
        10..=12 => {
            let k = key(&mut rng);
            let set_len = (rng.below(5) == 0).then(|| size(&mut rng));
            let writes = (0..1 + rng.below(3))
                .map(|j| match rng.below(3) {
                    // A large write past the end of most values: appended
                    // to a blob in place, past what a redo record holds.
                    0 => (1_200_000 + rng.below(100_000), (value_seed + j, (1 << 20) + rng.below(300_000))),
                    // Small writes anywhere in a value.
                    _ => (rng.below(1_200_000), (value_seed + j, 1 + rng.below(8192))),
                })
                .collect();
            CrashOp::Patch(k, PatchSpec { set_len, writes })
        }
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

/// The bytes of a value.
pub fn bytes((seed, len): Value) -> Vec<u8> {
    crate::data::pattern(seed, 0, len as usize)
}

/// Applies `op` to a model of the store.
pub fn apply(state: &mut Model, op: &CrashOp) {
    match op {
        CrashOp::Put(k, v) | CrashOp::Stream(k, v) => {
            state.insert(k.clone(), bytes(*v));
        }
        CrashOp::Delete(k) => {
            state.remove(k);
        }
        CrashOp::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => state.insert(k.clone(), bytes(*v)),
                    None => state.remove(k),
                };
            }
        }
        CrashOp::Patch(k, spec) => {
            if let Some(value) = state.get_mut(k) {
                if let Some(len) = spec.set_len {
                    value.resize(len as usize, 0);
                }
                for (offset, v) in &spec.writes {
                    let data = bytes(*v);
                    let end = *offset as usize + data.len();
                    if value.len() < end {
                        value.resize(end, 0);
                    }
                    value[*offset as usize..end].copy_from_slice(&data);
                }
            }
        }
    }
}

fn value((seed, len): Value) -> Bytes {
    Bytes::from(pattern(seed, 0, len as usize))
}

fn key(k: &str) -> Key {
    Key::new(k).expect("workload keys are valid")
}

/// Runs `op` on `store`; panics if it fails (a patch of a missing key
/// excepted).
pub async fn run(store: &LocalStorage, op: CrashOp) {
    match op {
        CrashOp::Put(k, v) => {
            store.put(&key(&k), value(v), PutOptions::default()).await.expect("put");
        }
        CrashOp::Stream(k, (s, len)) => {
            let mut w = store.write(&key(&k), PutOptions::default()).await.expect("write");
            let mut pos = 0;
            while pos < len {
                let n = (64 * 1024).min(len - pos);
                w.write(Bytes::from(pattern(s, pos, n as usize))).await.expect("write chunk");
                pos += n;
            }
            w.finish().await.expect("finish");
        }
        CrashOp::Delete(k) => store.delete(&key(&k)).await.expect("delete"),
        CrashOp::Batch(ops) => {
            let ops = ops
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => BatchOp::put(key(&k), value(v)),
                    None => BatchOp::delete(key(&k)),
                })
                .collect();
            store.batch(ops).await.expect("batch");
        }
        CrashOp::Patch(k, spec) => {
            let mut patch = Patch::new();
            if let Some(len) = spec.set_len {
                patch = patch.set_len(len);
            }
            for (offset, v) in spec.writes {
                patch.push_write(offset, value(v));
            }
            match store.patch(&key(&k), &patch, &Condition::Exists).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("patch: {e}"),
            }
        }
    }
}
