//! Crash test of `LocalStorage`: a child process runs a seeded workload and
//! is SIGKILLed at a random moment; the store reopens and must hold exactly
//! the state after the last acknowledged operation, or after the one that
//! was in flight, whole: every acknowledged write present, every batch
//! and every patch wholly present or absent, no torn value, no orphaned
//! blob file.
//!
//! `TIERFS_CRASH_SEEDS` sets the number of seeds (default 24). The power
//! loss test (`power_loss.rs`) cuts the power instead of killing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use tierfs_core::{ListEntry, ListOptions, LocalStorage, Storage, StorageExt};
use tierfs_tests::crash::{apply, op, run, Model, Rng};

mod power_loss;

/// Runs the child until it is killed; returns the last acknowledged index.
fn run_and_kill(dir: &std::path::Path, seed: u64) -> Option<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(dir)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crash-writer");
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                last = Some(n.parse::<u64>().expect("ack index"));
            }
        }
        last
    });
    let delay = 30 + Rng::new(seed).below(900);
    std::thread::sleep(Duration::from_millis(delay));
    // SIGKILL: no destructor, no flush, no chance to finish the operation.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().expect("wait");
    assert!(status.code().is_none(), "crash-writer exited by itself: {status}");
    reader.join().expect("reader thread")
}

async fn stored_state(store: &LocalStorage) -> BTreeMap<String, (u64, Vec<u8>)> {
    let entries: Vec<ListEntry> = store.list_stream(ListOptions::recursive("")).try_collect().await.unwrap();
    let mut state = BTreeMap::new();
    for entry in entries {
        let ListEntry::Object(meta) = entry else { panic!("prefix in a recursive listing") };
        let value = store.get(&meta.key).await.unwrap();
        assert_eq!(value.len() as u64, meta.size, "size of {} disagrees with its value", meta.key);
        state.insert(meta.key.to_string(), (meta.size, value.to_vec()));
    }
    state
}

fn matches(stored: &BTreeMap<String, (u64, Vec<u8>)>, model: &Model) -> bool {
    stored.len() == model.len()
        && model.iter().all(|(k, bytes)| match stored.get(k) {
            Some((size, stored)) => *size == bytes.len() as u64 && stored == bytes,
            None => false,
        })
}

/// The keys whose size or bytes differ, with the first differing offset.
fn differing(stored: &BTreeMap<String, (u64, Vec<u8>)>, model: &Model) -> String {
    let mut out = Vec::new();
    for (k, bytes) in model {
        match stored.get(k) {
            None => out.push(format!("{k} missing")),
            Some((_, got)) if got != bytes => {
                let at =
                    got.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(got.len().min(bytes.len()));
                out.push(format!(
                    "{k}: {} bytes stored, {} expected, first difference at {at}",
                    got.len(),
                    bytes.len()
                ));
            }
            Some(_) => {}
        }
    }
    out.join("; ")
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() {
    let seeds: u64 = std::env::var("TIERFS_CRASH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let mut total_acked = 0;
    for seed in 1..=seeds {
        let dir = tempfile::tempdir().unwrap();
        let last = run_and_kill(dir.path(), seed);
        let acked = last.map_or(0, |l| l + 1);
        total_acked += acked;
        check_store(dir.path(), seed, acked).await;
    }
    assert!(total_acked > seeds, "the workload barely ran ({total_acked} operations in {seeds} runs)");
    println!("{seeds} crashes, {total_acked} acknowledged operations checked");
}

/// Opens the store in `dir` left by the workload of `seed` after `acked`
/// acknowledged operations, and asserts it holds the state before or after
/// the operation in flight, whole, with no blob file left behind or missing.
async fn check_store(dir: &std::path::Path, seed: u64, acked: u64) {
    let mut before = Model::new();
    for i in 0..acked {
        apply(&mut before, &op(seed, i));
    }
    let mut after = before.clone();
    apply(&mut after, &op(seed, acked));

    let store = LocalStorage::open("crash", dir, Default::default())
        .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
    let stored = stored_state(&store).await;
    assert!(
        matches(&stored, &before) || matches(&stored, &after),
        "seed {seed}: after {acked} acknowledged operations the store holds neither the state \
         before nor after the operation in flight ({:?})\nstored keys: {:?}\nexpected: {:?}\n\
         differing from the state before: {}",
        op(seed, acked),
        stored.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        differing(&stored, &before),
    );
    let large = stored
        .values()
        .filter(|(size, _)| *size as usize > tierfs_core::backends::local::INLINE_LIMIT)
        .count();
    let blobs = std::fs::read_dir(dir.join("blobs")).unwrap().count();
    assert_eq!(blobs, large, "seed {seed}: blob files left behind or missing");
}

/// The workload run in this process, without a crash, ends in the model's
/// state: the model and the store agree on every operation, so a failure
/// of the crash tests is the crash's doing.
#[tokio::test(flavor = "multi_thread")]
async fn the_workload_without_a_crash_ends_in_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open("crash", dir.path(), Default::default()).unwrap();
    for seed in [5, 21] {
        let mut model = Model::new();
        for index in 0..150 {
            let op = op(seed, index);
            run(&store, op.clone()).await;
            apply(&mut model, &op);
            let stored = stored_state(&store).await;
            assert!(
                matches(&stored, &model),
                "seed {seed}, after operation {index} ({op:?}): {}",
                differing(&stored, &model)
            );
        }
        for key in model.keys() {
            store.delete(&tierfs_core::Key::new(key).unwrap()).await.unwrap();
        }
    }
}
