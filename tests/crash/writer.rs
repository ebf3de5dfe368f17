//! Child process of the crash test: runs the seeded workload against a
//! `LocalStorage` and prints `ack N` after operation N is acknowledged,
//! until it is killed.
//!
//! Usage: `crash-writer STORE_DIR SEED`

use std::io::Write;

use tierfs_core::LocalStorage;
use tierfs_tests::crash::{op, run};

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
        run(&store, op(seed, index)).await;
        writeln!(out, "ack {index}").and_then(|_| out.flush()).expect("stdout");
    }
}
