//! The Redis cache tier on a real three-primary Redis Cluster: entries land
//! on every primary, and `clear` removes this tier's entries from all of
//! them and nothing else.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tierfs_core::policies::cache::{CacheTier, CachedValue, RedisCacheTier, RedisTierOptions};
use tierfs_core::{Key, ObjectMeta};
use tierfs_tests::services::redis_cluster_urls;

fn tier(prefix: &str) -> std::sync::Arc<RedisCacheTier> {
    RedisCacheTier::new(RedisTierOptions {
        urls: redis_cluster_urls(),
        cluster: true,
        key_prefix: prefix.to_owned(),
        ttl: None,
        max_entry_bytes: 1 << 20,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn value(key: &Key, i: usize) -> CachedValue {
    let value = Bytes::from(format!("value {i}"));
    let meta = ObjectMeta {
        key: key.clone(),
        size: value.len() as u64,
        modified: SystemTime::now(),
        version: i.to_string(),
        metadata: Default::default(),
    };
    CachedValue::new(value, meta)
}

/// How many keys under `prefix` each primary holds.
fn keys_per_primary(prefix: &str) -> Vec<usize> {
    redis_cluster_urls()
        .iter()
        .map(|url| {
            let port = url.rsplit(':').next().unwrap();
            let out = std::process::Command::new("redis-cli")
                .args(["-p", port, "--scan", "--pattern", &format!("{prefix}*")])
                .output()
                .expect("run redis-cli");
            assert!(out.status.success(), "redis-cli --scan on {url} failed");
            String::from_utf8_lossy(&out.stdout).lines().count()
        })
        .collect()
}

#[tokio::test]
async fn entries_spread_over_every_primary_and_clear_removes_them_all() {
    let prefix = format!("tierfs-test-{}:", std::process::id());
    let mine = tier(&prefix);
    let other_prefix = format!("{prefix}other:");
    let other = tier(&other_prefix);
    let keys: Vec<Key> = (0..200).map(|i| Key::new(format!("k/{i}")).unwrap()).collect();
    for (i, k) in keys.iter().enumerate() {
        mine.put(k, value(k, i)).await.unwrap();
    }
    let kept = Key::new("kept").unwrap();
    other.put(&kept, value(&kept, 0)).await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        let got = mine.get(k).await.unwrap().unwrap_or_else(|| panic!("{k} is not cached"));
        assert_eq!(got.value, Bytes::from(format!("value {i}")));
    }
    let spread = keys_per_primary(&prefix);
    assert!(spread.iter().all(|&n| n > 0), "the keys did not reach every primary: {spread:?}");
    assert_eq!(spread.iter().sum::<usize>(), keys.len() + 1);

    // The other tier's prefix starts with this one's, so clear it first to
    // show that clear stays within its prefix.
    other.clear().await.unwrap();
    assert!(other.get(&kept).await.unwrap().is_none());
    assert_eq!(keys_per_primary(&prefix).iter().sum::<usize>(), keys.len());
    mine.clear().await.unwrap();
    assert_eq!(keys_per_primary(&prefix), vec![0, 0, 0]);
    for k in &keys {
        assert!(mine.get(k).await.unwrap().is_none(), "{k} survived clear");
    }
}
