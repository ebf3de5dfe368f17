//! Health tracking: timeouts, bounded retries, fail-fast while a backend is
//! down, and recovery through probes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tierfs_core::layers::{FaultStorage, HealthOptions, HealthStorage};
use tierfs_core::metrics::StorageMetrics;
use tierfs_core::{ErrorKind, Key, MemoryStorage, Storage};

fn options() -> HealthOptions {
    HealthOptions {
        timeout: Duration::from_millis(200),
        retries: 2,
        retry_backoff: Duration::from_millis(5),
        probe_backoff: Duration::from_millis(50),
        max_probe_backoff: Duration::from_millis(400),
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_a_bounded_number_of_times() {
    let (faulty, faults) = FaultStorage::wrap(Arc::new(MemoryStorage::new("m")));
    let metrics = StorageMetrics::new();
    let store = HealthStorage::new(faulty, options(), Some(metrics.clone()));
    let k = Key::new("k").unwrap();
    faults.fail_next(2);
    store.put(&k, Bytes::from_static(b"v"), Default::default()).await.unwrap();
    assert_eq!(metrics.snapshot().retries, 2);
    assert!(store.is_healthy());
    faults.fail_next(3);
    let e = store.get(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(faults.injected(), 5, "one call plus two retries, no more");
    assert!(!store.is_healthy());
}

#[tokio::test(start_paused = true)]
// On tokio's paused clock: the elapsed times below are exact.
async fn a_hung_backend_times_out_and_calls_then_fail_fast() {
    let (faulty, faults) = FaultStorage::wrap(Arc::new(MemoryStorage::new("m")));
    let store = HealthStorage::new(faulty, HealthOptions { retries: 0, ..options() }, None);
    let k = Key::new("k").unwrap();
    faults.set_latency(Duration::from_secs(5));
    let start = tokio::time::Instant::now();
    let e = store.get(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert_eq!(start.elapsed(), options().timeout, "the timeout did not cut the call");
    // Marked unhealthy: the next call does not wait, and reaches no backend.
    let injected = faults.injected();
    let start = tokio::time::Instant::now();
    let e = store.get(&k).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(faults.injected(), injected, "the call reached the backend");
    assert!(e.to_string().contains("unreachable"), "{e}");
}

#[tokio::test]
async fn probes_bring_a_recovered_backend_back() {
    let (faulty, faults) = FaultStorage::wrap(Arc::new(MemoryStorage::new("m")));
    let store = HealthStorage::new(faulty, options(), None);
    let k = Key::new("k").unwrap();
    faults.set_down(true);
    store.get(&k).await.unwrap_err();
    assert!(!store.is_healthy());
    // Still down: probes fail and back off.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(!store.probe().await);
    faults.set_down(false);
    // A probe before the backoff has passed does nothing.
    assert!(!store.probe().await);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(store.probe().await);
    assert!(store.is_healthy());
    assert_eq!(store.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn the_manager_probes_unhealthy_backends_by_itself() {
    use tierfs_core::{Config, StorageManager, StorageRegistry};
    let plugin = Arc::new(tierfs_tests::faults::FaultyPlugin::default());
    let registry = Arc::new(StorageRegistry::with_builtins());
    registry.register(plugin.clone()).unwrap();
    let config =
        Config::parse("[backends.f]\ntype = \"faulty\"\n[health]\nprobe_ms = 20\nretries = 0\n", None)
            .unwrap();
    let manager = StorageManager::with_registry(config, registry).await.unwrap();
    let faults = plugin.handle(0);
    let store = manager.session("t");
    let k = Key::new("k").unwrap();
    faults.set_down(true);
    assert_eq!(store.get(&k).await.unwrap_err().kind(), ErrorKind::Unavailable);
    assert!(!manager.backend_healthy("f").unwrap());
    faults.set_down(false);
    // No call is made: the manager's prober alone must notice the recovery.
    let start = Instant::now();
    while !manager.backend_healthy("f").unwrap() {
        assert!(start.elapsed() < Duration::from_secs(5), "the backend was never probed back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(manager.backend_healthy("nope").unwrap_err().kind(), ErrorKind::NotFound);
}
