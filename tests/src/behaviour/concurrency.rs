use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::{BatchOp, ErrorKind, PutOptions, Storage};

use super::{expect_kind, key};

const WRITERS: usize = 8;
const ROUNDS: usize = 25;

/// Eight writers on one key: every read sees one writer's value whole.
pub async fn concurrent_writers_same_key(store: Arc<dyn Storage>) {
    let k = key("contended");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                // Sizes straddle the inline limit of the local backend.
                let len = if (w + r) % 3 == 0 { 300 * 1024 } else { 1000 + w };
                store.put(&k, Bytes::from(vec![w as u8; len]), Default::default()).await.unwrap();
                let seen = store.get(&k).await.unwrap();
                assert!(!seen.is_empty() && seen.iter().all(|b| *b == seen[0]), "torn value");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = store.get(&k).await.unwrap();
    assert!((last[0] as usize) < WRITERS && last.iter().all(|b| *b == last[0]));
}

/// Eight writers on their own keys: every write is there afterwards.
pub async fn concurrent_writers_different_keys(store: Arc<dyn Storage>) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let k = key(&format!("conc/w{w}/r{r}"));
                store.put(&k, Bytes::from(format!("{w}-{r}")), Default::default()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for w in 0..WRITERS {
        for r in 0..ROUNDS {
            let k = key(&format!("conc/w{w}/r{r}"));
            assert_eq!(store.get(&k).await.unwrap(), Bytes::from(format!("{w}-{r}")));
        }
    }
}

/// Eight writers race to create one key, each alone and each inside a batch
/// that also writes a key of its own: exactly one creation wins, and a batch
/// that lost left nothing of itself behind.
pub async fn concurrent_conditional_puts(store: Arc<dyn Storage>) {
    let caps = store.capabilities();
    let once = PutOptions { if_not_exists: true, ..Default::default() };
    let k = key("race/single");
    if !caps.conditional_put {
        // No writer may think it won: each is refused, nothing is written.
        for w in 0..WRITERS {
            let put = store.put(&k, Bytes::from(vec![w as u8; 10]), once.clone()).await;
            expect_kind(put, ErrorKind::Unsupported);
        }
        expect_kind(store.get(&k).await, ErrorKind::NotFound);
        return;
    }
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, k, once) = (store.clone(), k.clone(), once.clone());
        tasks.push(tokio::spawn(async move {
            match store.put(&k, Bytes::from(vec![w as u8; 10]), once).await {
                Ok(_) => Some(w),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => None,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one conditional put wins: {winners:?}");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from(vec![winners[0] as u8; 10]));

    if !caps.atomic_batch {
        return;
    }
    let k = key("race/batch");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let ops = vec![
                BatchOp::put(key(&format!("race/own/{w}")), Bytes::from(format!("{w}"))),
                BatchOp::put_if_absent(k, Bytes::from(format!("{w}"))),
            ];
            match store.batch(ops).await {
                Ok(()) => Some(w),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => None,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one conditional batch wins: {winners:?}");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from(format!("{}", winners[0])));
    for w in 0..WRITERS {
        let own = store.get(&key(&format!("race/own/{w}"))).await;
        if w == winners[0] {
            assert_eq!(own.unwrap(), Bytes::from(format!("{w}")));
        } else {
            assert_eq!(own.unwrap_err().kind(), ErrorKind::NotFound, "a losing batch left its own key");
        }
    }
}
