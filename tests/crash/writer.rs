//! Child process of the crash test: runs the seeded workload against a
//! `LocalStorage` and prints `ack N` after operation N is acknowledged,
//! until it is killed.
//!
//! Usage: `crash-writer STORE_DIR SEED`

use std::io::Write;

use bytes::Bytes;
use tierfs_core::{BatchOp, Key, LocalStorage, PutOptions, Storage};
use tierfs_tests::crash::{op, CrashOp};
use tierfs_tests::data::pattern;

fn value((seed, len): (u64, u64)) -> Bytes {
    Bytes::from(pattern(seed, 0, len as usize))
}

fn key(k: &str) -> Key {
    Key::new(k).expect("workload keys are valid")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, seed] = args.as_slice() else {
        eprintln!("usage: crash-writer STORE_DIR SEED");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().expect("SEED is a number");
    let store = LocalStorage::open("crash", std::path::Path::new(dir), Default::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|_| out.flush()).expect("stdout");
    for index in 0.. {
        match op(seed, index) {
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
        }
        writeln!(out, "ack {index}").and_then(|_| out.flush()).expect("stdout");
    }
}
