//! Scenarios of `RedundantStorage`: the behaviour suite over two stacks,
//! then outages under load, stale, missing and partial copies, lost quorum
//! and catch-up, checked member by member on the bare backends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use tierfs_core::layers::{FaultHandle, FaultStorage, HealthOptions, HealthStorage};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::policies::redundant::{RedundantStorage, REVISION_KEY};
use tierfs_core::{
    BatchOp, Condition, ErrorKind, ListOptions, LocalStorage, MemoryStorage, Metadata, MetadataChanges,
    PutOptions, Storage, StorageExt,
};
use tierfs_tests::behaviour::{check_streamed, expect_kind, key, write_pattern};
use tierfs_tests::Fixture;

mod behaviour_two_local_quorum_two {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let members: Vec<Arc<dyn Storage>> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                Arc::new(LocalStorage::open(format!("local{i}"), dir.path(), Default::default()).unwrap())
                    as Arc<dyn Storage>
            })
            .collect();
        let store = RedundantStorage::new("pair", members, 2, StorageMetrics::new()).unwrap();
        Fixture::new(store, vec![Box::new(dirs)])
    });
}

mod behaviour_three_memory_quorum_two {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let members: Vec<Arc<dyn Storage>> =
            (0..3).map(|i| Arc::new(MemoryStorage::new(format!("mem{i}"))) as Arc<dyn Storage>).collect();
        let store = RedundantStorage::new("triple", members, 2, StorageMetrics::new()).unwrap();
        Fixture::new(store, vec![])
    });
}

/// Short timeouts and backoffs, so outages are noticed and ended quickly.
fn health_options() -> HealthOptions {
    HealthOptions {
        timeout: Duration::from_secs(2),
        retries: 2,
        retry_backoff: Duration::from_millis(10),
        probe_backoff: Duration::from_millis(50),
        max_probe_backoff: Duration::from_millis(200),
    }
}

/// One member: the bare backend (inspected directly), its fault switches,
/// and the health layer the redundant set talks to.
struct Member {
    bare: Arc<MemoryStorage>,
    faults: FaultHandle,
    health: Arc<HealthStorage>,
}

/// A redundant set of `HealthStorage(FaultStorage(MemoryStorage))` members.
struct Set {
    store: Arc<RedundantStorage>,
    members: Vec<Member>,
    metrics: Arc<StorageMetrics>,
}

/// The expected final state of each key: value and caller metadata, or deleted.
type Model = BTreeMap<String, Option<(Bytes, Metadata)>>;

fn redundant_set(copies: usize, quorum: usize, options: HealthOptions) -> Set {
    let metrics = StorageMetrics::new();
    let members: Vec<Member> = (0..copies)
        .map(|i| {
            let bare = Arc::new(MemoryStorage::new(format!("m{i}")));
            let (faulty, faults) = FaultStorage::wrap(bare.clone());
            let health = Arc::new(HealthStorage::new(faulty, options, Some(metrics.clone())));
            Member { bare, faults, health }
        })
        .collect();
    let stack: Vec<Arc<dyn Storage>> = members.iter().map(|m| m.health.clone() as Arc<dyn Storage>).collect();
    let store = RedundantStorage::new(format!("r{copies}q{quorum}"), stack, quorum, metrics.clone()).unwrap();
    Set { store, members, metrics }
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Polls `check` every 10 ms until it holds, for at most 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Set {
    /// Ends member `i`'s outage and probes it until it is healthy again.
    async fn bring_back(&self, i: usize) {
        let member = &self.members[i];
        member.faults.set_down(false);
        eventually(&format!("member {i} is healthy"), || member.health.probe()).await;
    }

    /// Scrubs until no key lags (background writes included).
    async fn settle(&self) {
        for _ in 0..20 {
            let report = self.store.scrub_once().await.unwrap();
            assert_eq!(report.failures, 0, "{report:?}");
            if report.still_lagging == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("keys still lag after 20 scrubs");
    }

    /// Asserts that every member holds exactly the keys of `model` under
    /// `prefix`, each with the expected value and caller metadata, and with
    /// identical stored metadata (revision included) on every member.
    async fn assert_converged(&self, prefix: &str, model: &Model) {
        for (k, expected) in model {
            let k = key(k);
            let mut first: Option<Metadata> = None;
            for (i, member) in self.members.iter().enumerate() {
                match expected {
                    Some((value, meta)) => {
                        let got = member.bare.get(&k).await.unwrap_or_else(|e| panic!("member {i}: {e}"));
                        assert_eq!(&got, value, "member {i} holds a different value of {k}");
                        let mut stored = member.bare.stat(&k).await.unwrap().metadata;
                        assert!(stored.contains_key(REVISION_KEY), "{k} on member {i} has no revision");
                        match &first {
                            Some(m) => assert_eq!(&stored, m, "member {i} holds other metadata for {k}"),
                            None => first = Some(stored.clone()),
                        }
                        stored.remove(REVISION_KEY);
                        assert_eq!(&stored, meta, "caller metadata of {k} on member {i}");
                    }
                    None => {
                        expect_kind(member.bare.get(&k).await, ErrorKind::NotFound);
                    }
                }
            }
        }
        let present: BTreeSet<&str> =
            model.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.as_str()).collect();
        for (i, member) in self.members.iter().enumerate() {
            let listed: Vec<String> = member
                .bare
                .list_stream(ListOptions::recursive(prefix))
                .map_ok(|e| e.name().to_owned())
                .try_collect()
                .await
                .unwrap();
            let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
            assert_eq!(listed, present, "keys on member {i}");
        }
    }
}

fn next_random(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Eight tasks put, get, stat and delete their own keys for `run`; each
/// checks every read against what it last wrote and returns its model and
/// every failure it saw.
async fn workload(store: Arc<RedundantStorage>, run: Duration) -> (Model, Vec<String>, u64) {
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut model = Model::new();
            let mut failures = Vec::new();
            let mut ops = 0u64;
            let mut x = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
            while Instant::now() < deadline {
                let r = next_random(&mut x);
                let name = format!("load/t{t}/k{}", r % 24);
                let k = key(&name);
                match (r >> 16) % 10 {
                    0..=3 => {
                        let len = if (r >> 24) & 15 == 0 { 300 * 1024 } else { (r >> 32) as usize % 2000 };
                        let value = Bytes::from(vec![(r >> 40) as u8; len]);
                        let meta = metadata(&[("writer", &t.to_string()), ("op", &ops.to_string())]);
                        match store.put(&k, value.clone(), PutOptions::with_metadata(meta.clone())).await {
                            Ok(_) => {
                                model.insert(name, Some((value, meta)));
                            }
                            Err(e) => failures.push(format!("put {name}: {e}")),
                        }
                    }
                    4..=6 => match (store.get(&k).await, model.get(&name)) {
                        (Ok(got), Some(Some((value, _)))) if got == *value => {}
                        (Err(e), None | Some(None)) if e.kind() == ErrorKind::NotFound => {}
                        (got, expected) => failures.push(format!(
                            "get {name}: got {:?}, expected {:?}",
                            got.map(|v| v.len()),
                            expected.map(|e| e.as_ref().map(|(v, _)| v.len()))
                        )),
                    },
                    7 => match (store.stat(&k).await, model.get(&name)) {
                        (Ok(got), Some(Some((value, meta))))
                            if got.metadata == *meta && got.size == value.len() as u64 => {}
                        (Err(e), None | Some(None)) if e.kind() == ErrorKind::NotFound => {}
                        (got, _) => failures.push(format!("stat {name}: unexpected {got:?}")),
                    },
                    _ => match store.delete(&k).await {
                        Ok(()) => {
                            model.insert(name, None);
                        }
                        Err(e) => failures.push(format!("delete {name}: {e}")),
                    },
                }
                ops += 1;
            }
            (model, failures, ops)
        }));
    }
    let mut model = Model::new();
    let mut failures = Vec::new();
    let mut ops = 0;
    for task in tasks {
        let (m, f, n) = task.await.unwrap();
        model.extend(m);
        failures.extend(f);
        ops += n;
    }
    (model, failures, ops)
}

/// One member goes down under load and comes back: no call fails, and after
/// catch-up every member holds every acknowledged write and no deleted key.
async fn outage_under_load(copies: usize, quorum: usize) {
    let set = redundant_set(copies, quorum, health_options());
    let load = tokio::spawn(workload(set.store.clone(), Duration::from_secs(3)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    set.members[1].faults.set_down(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(set.members[1].faults.injected() > 0, "the outage was not noticed");
    assert!(!set.members[1].health.is_healthy());
    let hinted = set.store.lagging_keys();
    assert!(hinted > 0, "writes during the outage left no hints");
    set.bring_back(1).await;
    let (model, failures, ops) = load.await.unwrap();
    assert!(failures.is_empty(), "{} of {ops} operations failed: {failures:#?}", failures.len());
    assert!(ops > 500, "the workload ran only {ops} operations");
    assert!(model.values().any(Option::is_none) && model.values().any(Option::is_some));

    set.settle().await;
    set.assert_converged("load/", &model).await;
    let repairs = set.metrics.snapshot().repairs;
    assert!(repairs > 0, "catch-up repaired nothing");
    eprintln!(
        "{copies} copies, quorum {quorum}: {ops} operations, {hinted} keys hinted during the outage, \
         {} keys checked, {repairs} repairs",
        model.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_one_of_two_with_quorum_one() {
    outage_under_load(2, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_one_of_three_with_quorum_two() {
    outage_under_load(3, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_and_missing_copies_are_repaired_on_read() {
    let set = redundant_set(3, 2, health_options());
    let k = key("stale/doc");
    let meta = metadata(&[("owner", "alice")]);
    set.store.put(&k, Bytes::from_static(b"current"), PutOptions::with_metadata(meta.clone())).await.unwrap();
    set.settle().await;
    let current = set.members[1].bare.stat(&k).await.unwrap().metadata;

    // An older revision appears on the first member behind the layer's back.
    let mut old = meta.clone();
    old.insert(REVISION_KEY.into(), "1".into());
    set.members[0].bare.put(&k, Bytes::from_static(b"stale"), PutOptions::with_metadata(old)).await.unwrap();
    let repairs = set.metrics.snapshot().repairs;
    assert_eq!(set.store.get(&k).await.unwrap(), Bytes::from_static(b"current"));
    assert_eq!(set.store.stat(&k).await.unwrap().metadata, meta);
    let bare = set.members[0].bare.clone();
    eventually("the stale copy is repaired", || async {
        bare.get(&k).await.is_ok_and(|v| v == Bytes::from_static(b"current"))
    })
    .await;
    assert_eq!(bare.stat(&k).await.unwrap().metadata, current);
    assert!(set.metrics.snapshot().repairs > repairs);

    // A copy lost on another member.
    set.members[2].bare.delete(&k).await.unwrap();
    let mut range = set.store.read(&k, Some(1..4)).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut range).await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, b"urr");
    let bare = set.members[2].bare.clone();
    eventually("the missing copy is restored", || async { bare.stat(&k).await.is_ok() }).await;
    let model = Model::from([("stale/doc".to_owned(), Some((Bytes::from_static(b"current"), meta)))]);
    set.assert_converged("stale/", &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_quorum_fails_fast_then_copies_converge() {
    let set = redundant_set(3, 2, health_options());
    let before = key("q/before");
    set.store.put(&before, Bytes::from_static(b"before"), PutOptions::default()).await.unwrap();
    set.settle().await;

    set.members[1].faults.set_down(true);
    set.members[2].faults.set_down(true);
    let during = key("q/during");
    let meta = metadata(&[("attempt", "1")]);
    let e = expect_kind(
        set.store.put(&during, Bytes::from_static(b"during"), PutOptions::with_metadata(meta.clone())).await,
        ErrorKind::Unavailable,
    );
    assert!(e.is_retryable(), "{e}");
    let message = e.to_string();
    for needle in ["q/during", "r3q2", "`m1`", "`m2`", "1 of 3", "needs 2"] {
        assert!(message.contains(needle), "`{needle}` missing from: {message}");
    }
    // Both are marked unhealthy now: the next write is refused up front.
    assert!(!set.store.is_healthy());
    let calls = |set: &Set| set.members[1].faults.injected() + set.members[2].faults.injected();
    let before_refusal = calls(&set);
    let refused = key("q/refused");
    let e = expect_kind(
        set.store.put(&refused, Bytes::from_static(b"x"), Default::default()).await,
        ErrorKind::Unavailable,
    );
    assert_eq!(calls(&set), before_refusal, "a member marked down was called");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    expect_kind(set.store.delete(&before).await, ErrorKind::Unavailable);
    // Reads still work from the member that holds the keys.
    assert_eq!(set.store.get(&before).await.unwrap(), Bytes::from_static(b"before"));
    expect_kind(set.store.get(&refused).await, ErrorKind::NotFound);

    set.bring_back(1).await;
    set.bring_back(2).await;
    assert!(set.store.is_healthy());
    set.settle().await;
    // The failed write reached the first member; catch-up converges every
    // copy on it (highest revision wins) rather than leaving them split.
    let model = Model::from([
        ("q/before".to_owned(), Some((Bytes::from_static(b"before"), Metadata::new()))),
        ("q/during".to_owned(), Some((Bytes::from_static(b"during"), meta))),
        ("q/refused".to_owned(), None),
    ]);
    set.assert_converged("q/", &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_batch_on_one_member_is_repaired_by_scrub() {
    // No retries, so the injected half-batch is not simply retried whole.
    let set = redundant_set(3, 2, HealthOptions { retries: 0, ..health_options() });
    set.store.put(&key("pb/gone"), Bytes::from_static(b"old"), Default::default()).await.unwrap();
    set.settle().await;

    set.members[1].faults.set_partial_batch(1);
    let big = Bytes::from(vec![5u8; 600 * 1024]);
    let meta = metadata(&[("kind", "batch")]);
    let ops = vec![
        BatchOp::Put {
            key: key("pb/a"),
            value: Bytes::from_static(b"a"),
            metadata: meta.clone(),
            if_not_exists: false,
        },
        BatchOp::put(key("pb/big"), big.clone()),
        BatchOp::put(key("pb/c"), "c"),
        BatchOp::delete(key("pb/gone")),
    ];
    set.store.batch(ops).await.unwrap();
    let store = set.store.clone();
    eventually("the failed member is hinted", || async { store.lagging_keys() == 4 }).await;
    // The member applied only the first operation.
    let bare = &set.members[1].bare;
    assert_eq!(bare.get(&key("pb/a")).await.unwrap(), Bytes::from_static(b"a"));
    expect_kind(bare.get(&key("pb/big")).await, ErrorKind::NotFound);
    assert_eq!(bare.get(&key("pb/gone")).await.unwrap(), Bytes::from_static(b"old"));
    // The layer serves the batch's outcome meanwhile.
    assert_eq!(set.store.get(&key("pb/big")).await.unwrap(), big);
    expect_kind(set.store.get(&key("pb/gone")).await, ErrorKind::NotFound);

    set.bring_back(1).await;
    let repairs = set.metrics.snapshot().repairs;
    let report = set.store.scrub_once().await.unwrap();
    assert_eq!(report.hinted_keys, 4, "{report:?}");
    assert_eq!(report.repairs, 3, "{report:?}");
    assert_eq!(report.still_lagging, 0, "{report:?}");
    assert_eq!(set.metrics.snapshot().repairs, repairs + 3);
    let model = Model::from([
        ("pb/a".to_owned(), Some((Bytes::from_static(b"a"), meta))),
        ("pb/big".to_owned(), Some((big, Metadata::new()))),
        ("pb/c".to_owned(), Some((Bytes::from_static(b"c"), Metadata::new()))),
        ("pb/gone".to_owned(), None),
    ]);
    set.assert_converged("pb/", &model).await;
    // A second scrub finds nothing to do.
    let report = set.store.scrub_once().await.unwrap();
    assert_eq!((report.repairs, report.hinted_keys, report.keys_compared), (0, 0, 3), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_during_an_outage_is_not_resurrected() {
    let set = redundant_set(3, 2, health_options());
    let k = key("t/doomed");
    set.store.put(&k, Bytes::from_static(b"doomed"), Default::default()).await.unwrap();
    set.store.put(&key("t/kept"), Bytes::from_static(b"kept"), Default::default()).await.unwrap();
    set.settle().await;
    set.members[2].faults.set_down(true);
    set.store.delete(&k).await.unwrap();
    set.bring_back(2).await;
    // The returning member still holds the old copy; nobody sees it.
    assert!(set.members[2].bare.get(&k).await.is_ok());
    expect_kind(set.store.get(&k).await, ErrorKind::NotFound);
    expect_kind(set.store.stat(&k).await, ErrorKind::NotFound);
    let names: Vec<String> = set
        .store
        .list_stream(ListOptions::recursive("t/"))
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["t/kept"]);
    set.settle().await;
    let model = Model::from([
        ("t/doomed".to_owned(), None),
        ("t/kept".to_owned(), Some((Bytes::from_static(b"kept"), Metadata::new()))),
    ]);
    set.assert_converged("t/", &model).await;
    // Once repaired, a full scrub does not bring it back either.
    let report = set.store.scrub_once().await.unwrap();
    assert_eq!(report.repairs, 0, "{report:?}");
    expect_kind(set.members[2].bare.get(&k).await, ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_merges_members_during_catch_up() {
    let set = redundant_set(3, 2, health_options());
    for i in 0..5 {
        set.store
            .put(&key(&format!("l/old{i}")), Bytes::from(vec![1u8; i + 1]), Default::default())
            .await
            .unwrap();
    }
    set.settle().await;
    set.members[0].faults.set_down(true);
    for i in 0..5 {
        set.store
            .put(&key(&format!("l/new{i}")), Bytes::from(vec![2u8; 10 + i]), Default::default())
            .await
            .unwrap();
    }
    set.store.delete(&key("l/old0")).await.unwrap();
    set.store.put(&key("l/old1"), Bytes::from(vec![3u8; 100]), Default::default()).await.unwrap();
    set.bring_back(0).await;
    // A copy only one member has (written around the layer) is listed too.
    set.members[0].bare.put(&key("l/only-here"), Bytes::from_static(b"x"), Default::default()).await.unwrap();

    let mut expected: Vec<(String, u64)> = (1..5).map(|i| (format!("l/old{i}"), i as u64 + 1)).collect();
    expected[0].1 = 100;
    expected.extend((0..5).map(|i| (format!("l/new{i}"), 10 + i as u64)));
    expected.push(("l/only-here".to_owned(), 1));
    expected.sort();
    for limit in [1, 2, 3, 1000] {
        let got: Vec<(String, u64)> = set
            .store
            .list_stream(ListOptions { limit: Some(limit), ..ListOptions::recursive("l/") })
            .map_ok(|e| match e {
                tierfs_core::ListEntry::Object(meta) => (meta.key.to_string(), meta.size),
                other => panic!("unexpected {other:?}"),
            })
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, expected, "limit {limit}");
    }
    set.settle().await;
    for member in &set.members {
        let n = member.bare.list(&ListOptions::recursive("l/")).await.unwrap().entries.len();
        assert_eq!(n, expected.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_write_during_an_outage_is_streamed_back() {
    let set = redundant_set(2, 1, health_options());
    set.members[1].faults.set_down(true);
    let k = key("big/streamed.bin");
    let len = 9 * 1024 * 1024 + 123;
    write_pattern(&*set.store, &k, 7, len, 1 << 20).await;
    assert_eq!(check_streamed(&*set.store, &k, 7, None).await, len);
    expect_kind(set.members[1].bare.stat(&k).await, ErrorKind::NotFound);
    set.bring_back(1).await;
    let report = set.store.scrub_once().await.unwrap();
    assert_eq!(report.repairs, 1, "{report:?}");
    assert_eq!(check_streamed(&*set.members[1].bare, &k, 7, None).await, len);
    let (a, b) = (set.members[0].bare.stat(&k).await.unwrap(), set.members[1].bare.stat(&k).await.unwrap());
    assert_eq!(a.metadata, b.metadata);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_scrubber_catches_up_and_ends_with_the_set() {
    let set = redundant_set(2, 1, health_options());
    set.members[1].faults.set_down(true);
    let k = key("bg/k");
    set.store.put(&k, Bytes::from_static(b"v"), Default::default()).await.unwrap();
    set.bring_back(1).await;
    let scrubber = set.store.spawn_scrubber(Duration::from_millis(20));
    let bare = set.members[1].bare.clone();
    eventually("the scrubber repairs the member", || async { bare.get(&k).await.is_ok() }).await;
    assert_eq!(set.store.lagging_keys(), 0);
    drop(set);
    tokio::time::timeout(Duration::from_secs(2), scrubber)
        .await
        .expect("the scrubber outlived its set")
        .unwrap();
}

#[tokio::test]
async fn overlapping_writes_leave_one_value_everywhere() {
    // Writers racing on one key, with a slow member: every member must end
    // on the same (highest) revision, whatever order the calls arrived in.
    let set = redundant_set(3, 2, health_options());
    set.members[2].faults.set_latency(Duration::from_millis(3));
    let k = key("race/k");
    let mut tasks = Vec::new();
    for w in 0..6u8 {
        let (store, k) = (set.store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..10u8 {
                let meta = metadata(&[("w", &w.to_string()), ("r", &r.to_string())]);
                store
                    .put(&k, Bytes::from(vec![w; 100 + r as usize]), PutOptions::with_metadata(meta))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    set.members[2].faults.set_latency(Duration::ZERO);
    let value = set.store.get(&k).await.unwrap();
    let meta = set.store.stat(&k).await.unwrap().metadata;
    set.settle().await;
    let model = Model::from([("race/k".to_owned(), Some((value, meta)))]);
    set.assert_converged("race/", &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metadata_update_lands_on_the_stream_opened_before_it() {
    // A stream opened before the update has the lower revision: the update
    // waits for it, then applies to the streamed value, instead of landing
    // first and having the stream skipped as superseded (or the reverse).
    let set = redundant_set(3, 2, health_options());
    let k = key("meta/streamed");
    set.store.put(&k, Bytes::from_static(b"old"), PutOptions::default()).await.unwrap();
    let mut writer =
        set.store.write(&k, PutOptions::with_metadata(metadata(&[("from", "stream")]))).await.unwrap();
    writer.write(Bytes::from_static(b"new value")).await.unwrap();
    let update = {
        let (store, k) = (set.store.clone(), k.clone());
        tokio::spawn(async move {
            let changes = MetadataChanges::new().set("posix.mode", "100600");
            store.set_metadata(&k, &changes, &Condition::Exists).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!update.is_finished(), "the update did not wait for the older stream");
    writer.finish().await.unwrap();
    let after = update.await.unwrap().unwrap();
    assert_eq!(after.size, 9);
    assert_eq!(set.store.get(&k).await.unwrap(), Bytes::from_static(b"new value"));
    let expected = metadata(&[("from", "stream"), ("posix.mode", "100600")]);
    assert_eq!(set.store.stat(&k).await.unwrap().metadata, expected);
    set.settle().await;
    let model =
        Model::from([("meta/streamed".to_owned(), Some((Bytes::from_static(b"new value"), expected)))]);
    set.assert_converged("meta/", &model).await;
}

#[test]
fn invalid_quorums_and_duplicate_members_are_refused() {
    let members = |n: usize| -> Vec<Arc<dyn Storage>> {
        (0..n).map(|i| Arc::new(MemoryStorage::new(format!("m{i}"))) as Arc<dyn Storage>).collect()
    };
    for (copies, quorum) in [(2, 0), (2, 3), (0, 1)] {
        let e = RedundantStorage::new("bad", members(copies), quorum, StorageMetrics::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("bad"), "{e}");
    }
    let e = RedundantStorage::new("bad", members(2), 3, StorageMetrics::new()).unwrap_err();
    assert!(e.to_string().contains("write_quorum is 3") && e.to_string().contains("between 1 and"), "{e}");
    let twice: Vec<Arc<dyn Storage>> =
        vec![Arc::new(MemoryStorage::new("x")), Arc::new(MemoryStorage::new("x"))];
    let e = RedundantStorage::new("bad", twice, 1, StorageMetrics::new()).unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let store = RedundantStorage::new("ok", members(3), 3, StorageMetrics::new()).unwrap();
    assert_eq!((store.members().len(), store.write_quorum()), (3, 3));
    let caps = store.capabilities();
    assert!(caps.atomic_batch && caps.rename && caps.streaming && !caps.persistent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_during_an_outage_outranks_the_old_target() {
    let set = redundant_set(3, 2, health_options());
    let (from, to) = (key("mv/from"), key("mv/to"));
    let meta = metadata(&[("mode", "644")]);
    // The source is older than the target it replaces.
    set.store
        .put(&from, Bytes::from_static(b"moved"), PutOptions::with_metadata(meta.clone()))
        .await
        .unwrap();
    set.store.put(&to, Bytes::from_static(b"old target"), Default::default()).await.unwrap();
    set.settle().await;
    let old_rev: u64 = set.members[2].bare.stat(&to).await.unwrap().metadata[REVISION_KEY].parse().unwrap();

    set.members[2].faults.set_down(true);
    set.store.rename(&from, &to).await.unwrap();
    assert_eq!(set.store.get(&to).await.unwrap(), Bytes::from_static(b"moved"));
    set.bring_back(2).await;
    // The returning member still has both old copies; neither is served.
    assert_eq!(set.members[2].bare.get(&to).await.unwrap(), Bytes::from_static(b"old target"));
    assert_eq!(set.store.get(&to).await.unwrap(), Bytes::from_static(b"moved"));
    assert_eq!(set.store.stat(&to).await.unwrap().metadata, meta);
    expect_kind(set.store.get(&from).await, ErrorKind::NotFound);
    set.settle().await;
    let model = Model::from([
        ("mv/from".to_owned(), None),
        ("mv/to".to_owned(), Some((Bytes::from_static(b"moved"), meta))),
    ]);
    set.assert_converged("mv/", &model).await;
    // The moved copy was re-stamped above the old target, so even a scrub
    // without hints (after a restart) would keep it.
    let new_rev: u64 = set.members[2].bare.stat(&to).await.unwrap().metadata[REVISION_KEY].parse().unwrap();
    assert!(new_rev > old_rev, "{new_rev} <= {old_rev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_failing_mid_stream_is_dropped_and_repaired() {
    let set = redundant_set(3, 2, health_options());
    let k = key("ms/value");
    let mut writer = set.store.write(&k, PutOptions::with_metadata(metadata(&[("s", "1")]))).await.unwrap();
    writer.write(Bytes::from(vec![1u8; 1 << 20])).await.unwrap();
    set.members[0].faults.set_down(true);
    writer.write(Bytes::from(vec![2u8; 1 << 20])).await.unwrap();
    writer.write(Bytes::from(vec![3u8; 17])).await.unwrap();
    let meta = writer.finish().await.unwrap();
    assert_eq!(meta.size, (2 << 20) + 17);
    expect_kind(set.members[0].bare.stat(&k).await, ErrorKind::NotFound);
    // Losing a second member mid-stream breaks the write: nothing is published.
    let other = key("ms/broken");
    let mut writer = set.store.write(&other, Default::default()).await.unwrap();
    writer.write(Bytes::from_static(b"part")).await.unwrap();
    set.members[1].faults.set_down(true);
    let e = expect_kind(writer.write(Bytes::from_static(b"more")).await, ErrorKind::Unavailable);
    assert!(e.to_string().contains("needs 2"), "{e}");
    drop(writer);
    set.bring_back(0).await;
    set.bring_back(1).await;
    set.settle().await;
    let mut value = vec![1u8; 1 << 20];
    value.extend(vec![2u8; 1 << 20]);
    value.extend(vec![3u8; 17]);
    let model = Model::from([
        ("ms/broken".to_owned(), None),
        ("ms/value".to_owned(), Some((Bytes::from(value), metadata(&[("s", "1")])))),
    ]);
    set.assert_converged("ms/", &model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_streamed_write_is_refused_at_finish() {
    let set = redundant_set(3, 2, health_options());
    let k = key("cw/k");
    set.store.put(&k, Bytes::from_static(b"first"), Default::default()).await.unwrap();
    let options = PutOptions { if_not_exists: true, ..Default::default() };
    let mut writer = set.store.write(&k, options.clone()).await.unwrap();
    writer.write(Bytes::from_static(b"second")).await.unwrap();
    expect_kind(writer.finish().await, ErrorKind::AlreadyExists);
    assert_eq!(set.store.get(&k).await.unwrap(), Bytes::from_static(b"first"));
    // A deleted key counts as absent, even on a member that missed the delete.
    set.members[1].faults.set_down(true);
    set.store.delete(&k).await.unwrap();
    set.bring_back(1).await;
    let mut writer = set.store.write(&k, options).await.unwrap();
    writer.write(Bytes::from_static(b"third")).await.unwrap();
    writer.finish().await.unwrap();
    set.settle().await;
    let model = Model::from([("cw/k".to_owned(), Some((Bytes::from_static(b"third"), Metadata::new())))]);
    set.assert_converged("cw/", &model).await;
}

/// The members of a set that outlive the process using them (as the nodes
/// of a cluster do): bare stores only.
type Durable = Vec<Arc<MemoryStorage>>;

/// A quorum-2 set over `durable`, member 2 down, hints in `log` (or in
/// memory only): deletes one key and renames another during the outage,
/// then "crashes": its runtime is dropped with the set in it, background
/// work and in-memory hints included, without a shutdown.
fn delete_and_rename_then_crash(durable: &Durable, log: Option<&std::path::Path>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let weak = runtime.block_on(async {
        let metrics = StorageMetrics::new();
        let mut faults = Vec::new();
        let stack: Vec<Arc<dyn Storage>> = durable
            .iter()
            .map(|bare| {
                let (faulty, handle) = FaultStorage::wrap(bare.clone());
                faults.push(handle);
                Arc::new(HealthStorage::new(faulty, health_options(), Some(metrics.clone())))
                    as Arc<dyn Storage>
            })
            .collect();
        let store = match log {
            Some(path) => RedundantStorage::with_hint_log("crashing", stack, 2, metrics, path).unwrap(),
            None => RedundantStorage::new("crashing", stack, 2, metrics).unwrap(),
        };
        for name in ["c/doomed", "c/from", "c/kept"] {
            store.put(&key(name), Bytes::from(name.to_owned()), Default::default()).await.unwrap();
        }
        assert_eq!(store.scrub_once().await.unwrap().still_lagging, 0);
        faults[2].set_down(true);
        store.delete(&key("c/doomed")).await.unwrap();
        store.rename(&key("c/from"), &key("c/to")).await.unwrap();
        assert_eq!(store.lagging_keys(), 3, "the delete, and both keys of the rename");
        Arc::downgrade(&store)
    });
    drop(runtime);
    assert!(weak.upgrade().is_none(), "the crashed set is still alive");
}

/// After the crash: a new set over the same members (member 2 back) and
/// the same hint log, scrubbed; what each key resolves to.
async fn after_restart(durable: &Durable, log: Option<&std::path::Path>) -> Vec<Option<Bytes>> {
    let stack: Vec<Arc<dyn Storage>> = durable.iter().map(|b| b.clone() as Arc<dyn Storage>).collect();
    let store = match log {
        Some(path) => {
            RedundantStorage::with_hint_log("restarted", stack, 2, StorageMetrics::new(), path).unwrap()
        }
        None => RedundantStorage::new("restarted", stack, 2, StorageMetrics::new()).unwrap(),
    };
    let report = store.scrub_once().await.unwrap();
    assert_eq!(report.failures, 0, "{report:?}");
    assert_eq!(store.lagging_keys(), 0, "{report:?}");
    let mut found = Vec::new();
    for name in ["c/doomed", "c/from", "c/to", "c/kept"] {
        found.push(match store.get(&key(name)).await {
            Ok(v) => Some(v),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("{name}: {e}"),
        });
    }
    found
}

/// A key deleted, and the source of a rename, while a member was down do
/// not come back after a crash, a restart and a scrub: the hints and
/// tombstones are in the hint log. Without one they do come back (the
/// limit the log removes), which shows the check can fail.
#[test]
fn deletes_and_renames_during_an_outage_survive_a_crash() {
    let fresh = || -> Durable { (0..3).map(|i| Arc::new(MemoryStorage::new(format!("d{i}")))).collect() };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hints.log");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let durable = fresh();
    delete_and_rename_then_crash(&durable, Some(&log));
    let found = runtime.block_on(after_restart(&durable, Some(&log)));
    let (to, kept) = (Bytes::from_static(b"c/from"), Bytes::from_static(b"c/kept"));
    assert_eq!(found, [None, None, Some(to.clone()), Some(kept.clone())], "doomed, from, to, kept");
    // The returning member was repaired: the deleted copies are gone there too.
    for name in ["c/doomed", "c/from"] {
        expect_kind(runtime.block_on(durable[2].get(&key(name))), ErrorKind::NotFound);
    }

    let durable = fresh();
    delete_and_rename_then_crash(&durable, None);
    let found = runtime.block_on(after_restart(&durable, None));
    assert_eq!(found[0], Some(Bytes::from_static(b"c/doomed")), "without a log the deleted key returns");
    assert_eq!(found[1], Some(to), "without a log the rename's source returns");
}
