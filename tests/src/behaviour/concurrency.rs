use std::sync::Arc;

use bytes::Bytes;
use tierfs_core::Storage;

use super::key;

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
