//! Quotas over a real local store: random sequences of puts, overwrites,
//! deletes, renames (into, out of and within the counted prefix), batches,
//! streamed writes and patches, checked against a model after every step
//! (the usage is exact; a change that would pass a limit is refused whole
//! with `QuotaExceeded` and changes nothing), and the usage a reopened
//! store counts from its data equals the model.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use tierfs_core::{BatchOp, Condition, Config, ErrorKind, Key, Patch, Storage, StorageManager, Used};

const MAX_BYTES: u64 = 3_000;
const MAX_KEYS: u64 = 4;

fn config(dir: &Path) -> Config {
    Config::parse(
        &format!(
            "[backends.disk]\ntype = \"local\"\npath = {:?}\n\
             [[quotas]]\nprefix = \"q/\"\nmax_bytes = {MAX_BYTES}\nmax_keys = {MAX_KEYS}\n",
            dir.join("disk")
        ),
        None,
    )
    .unwrap()
}

/// Keys 0..6 are counted (`q/`), 6..8 are not (`out/`).
fn name(k: u8) -> String {
    if k < 6 {
        format!("q/k{k}")
    } else {
        format!("out/k{k}")
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, usize),
    Delete(u8),
    Rename(u8, u8),
    Batch(Vec<(u8, Option<usize>)>),
    Stream(u8, Vec<usize>),
    Patch(u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..8;
    let size = 0usize..1_200;
    prop_oneof![
        3 => (key.clone(), size.clone()).prop_map(|(k, s)| Op::Put(k, s)),
        2 => key.clone().prop_map(Op::Delete),
        2 => (key.clone(), key.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => proptest::collection::vec((key.clone(), proptest::option::of(size.clone())), 1..4).prop_map(Op::Batch),
        1 => (key.clone(), proptest::collection::vec(0usize..700, 0..4)).prop_map(|(k, c)| Op::Stream(k, c)),
        1 => (key, 0u64..1_500).prop_map(|(k, l)| Op::Patch(k, l)),
    ]
}

/// What the model's counted keys add up to.
fn counted(model: &BTreeMap<String, u64>) -> Used {
    let q = model.iter().filter(|(k, _)| k.starts_with("q/"));
    Used { bytes: q.clone().map(|(_, s)| s).sum(), keys: q.count() as u64 }
}

fn fits(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> bool {
    let (b, a) = (counted(before), counted(after));
    (a.bytes <= b.bytes || a.bytes <= MAX_BYTES) && (a.keys <= b.keys || a.keys <= MAX_KEYS)
}

async fn apply(store: &dyn Storage, model: &mut BTreeMap<String, u64>, op: &Op) {
    let key = |k: u8| Key::new(name(k)).unwrap();
    let mut next = model.clone();
    let result = match op {
        Op::Put(k, size) => {
            next.insert(name(*k), *size as u64);
            store.put(&key(*k), Bytes::from(vec![1u8; *size]), Default::default()).await.map(drop)
        }
        Op::Delete(k) => {
            if next.remove(&name(*k)).is_none() {
                return;
            }
            store.delete(&key(*k)).await
        }
        Op::Rename(a, b) => {
            let Some(size) = next.remove(&name(*a)) else { return };
            if a == b {
                return;
            }
            next.insert(name(*b), size);
            store.rename(&key(*a), &key(*b)).await
        }
        Op::Batch(ops) => {
            let mut batch = Vec::new();
            for (k, size) in ops {
                match size {
                    Some(s) => {
                        next.insert(name(*k), *s as u64);
                        batch.push(BatchOp::Put {
                            key: key(*k),
                            value: Bytes::from(vec![2u8; *s]),
                            metadata: Default::default(),
                            if_not_exists: false,
                        });
                    }
                    None => {
                        next.remove(&name(*k));
                        batch.push(BatchOp::Delete { key: key(*k) });
                    }
                }
            }
            store.batch(batch).await
        }
        Op::Stream(k, chunks) => {
            next.insert(name(*k), chunks.iter().sum::<usize>() as u64);
            async {
                let mut writer = store.write(&key(*k), Default::default()).await?;
                for c in chunks {
                    if let Err(e) = writer.write(Bytes::from(vec![3u8; *c])).await {
                        writer.abort().await.ok();
                        return Err(e);
                    }
                }
                writer.finish().await.map(drop)
            }
            .await
        }
        Op::Patch(k, len) => {
            let Some(old) = next.get(&name(*k)).copied() else { return };
            let patch = Patch::new().set_len(*len).write(0, Bytes::from_static(b"p"));
            next.insert(name(*k), patch.final_len(old));
            store.patch(&key(*k), &patch, &Condition::default()).await.map(drop)
        }
    };
    match result {
        Ok(()) => {
            assert!(fits(model, &next), "{op:?} was accepted past the quota");
            *model = next;
        }
        Err(e) if e.kind() == ErrorKind::QuotaExceeded => {
            assert!(!fits(model, &next), "{op:?} was refused within the quota: {e}");
            assert!(e.message().contains("`q/`"), "{e}");
        }
        Err(e) => panic!("{op:?}: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn usage_is_exact_through_every_change_and_a_reopen(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut model = BTreeMap::new();
            {
                let manager = StorageManager::open(config(dir.path())).await.unwrap();
                let store = manager.session("t");
                for op in &ops {
                    apply(&store, &mut model, op).await;
                    assert_eq!(manager.quotas()[0].used, counted(&model), "after {op:?}");
                    for (k, size) in &model {
                        assert_eq!(store.stat(&Key::new(k.clone()).unwrap()).await.unwrap().size, *size, "{k}");
                    }
                }
                manager.shutdown().await.unwrap();
            }
            // Counted again from the data alone.
            let manager = StorageManager::open(config(dir.path())).await.unwrap();
            assert_eq!(manager.quotas()[0].used, counted(&model));
            manager.shutdown().await.unwrap();
        });
    }
}

#[tokio::test]
async fn a_write_past_the_quota_is_refused_whole_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StorageManager::open(config(dir.path())).await.unwrap();
    let store = manager.session("t");
    let k = Key::new("q/a").unwrap();
    store.put(&k, Bytes::from(vec![0u8; 2_000]), Default::default()).await.unwrap();
    let e = store
        .put(&Key::new("q/b").unwrap(), Bytes::from(vec![0u8; 1_500]), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(e.message().contains("3000 bytes") && e.message().contains("`q/`"), "{e}");
    assert_eq!(store.stat(&Key::new("q/b").unwrap()).await.unwrap_err().kind(), ErrorKind::NotFound);
    // A streamed write stops at the chunk that passes it; the old value stays.
    let mut writer = store.write(&k, Default::default()).await.unwrap();
    writer.write(Bytes::from(vec![1u8; 2_500])).await.unwrap();
    let e = writer.write(Bytes::from(vec![1u8; 1_000])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    writer.abort().await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from(vec![0u8; 2_000]));
    assert_eq!(manager.quotas()[0].used, Used { bytes: 2_000, keys: 1 });
    let e =
        store.explain(store.principal(), tierfs_core::access::StorageOperationType::Write, "q/x").unwrap();
    assert_eq!(
        e.quota.as_ref().map(|q| q.to_string()).as_deref(),
        Some("`q/`: 2000 of 3000 bytes, 1 of 4 keys")
    );
    manager.shutdown().await.unwrap();
}
