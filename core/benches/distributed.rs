//! The `s3` backend on a real Garage cluster against the same requests made
//! with the `object_store` crate directly (the client the backend uses, same
//! version, same endpoint, credentials and client options), and
//! `prefer_cache` in front of the cluster against the cluster alone.
//!
//! Needs the `TIERFS_S3_*` variables that `scripts/services/garage.sh`
//! writes; without them every benchmark here is skipped with a message.
//! `scripts/bench-distributed.sh` starts a cluster and runs this.
//!
//! Interleaved pairs (`common::interleaved`; reference `object_store`, target
//! `S3Storage`): `s3/{put,get}_{4KiB,4MiB}` one request at a time, and
//! `s3/{put,get}_{4KiB,4MiB}_x8`, eight requests at once per operation.
//! `prefer_cache/get_1MiB`: reads cycling over a 100 MiB working set (100
//! values of 1 MiB), a manager session with `prefer_cache` (LRU of 256 MiB)
//! against one with the cluster alone.

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use futures::future::join_all;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use tierfs_core::backends::s3::{S3Settings, S3Storage};
use tierfs_core::{Config, Key, PutOptions, Session, Storage, StorageManager};
use tokio::runtime::Runtime;

/// Requests in flight per operation in the `_x8` benchmarks.
const CONCURRENT: usize = 8;
/// Values of the prefer_cache working set (1 MiB each).
const WORKING_SET: usize = 100;

/// The cluster as the environment describes it.
struct Cluster {
    endpoint: String,
    region: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

impl Cluster {
    fn from_env() -> Option<Cluster> {
        let var = |name: &str| std::env::var(name).ok();
        Some(Cluster {
            endpoint: var("TIERFS_S3_ENDPOINT")?,
            region: var("TIERFS_S3_REGION")?,
            bucket: var("TIERFS_S3_BUCKET")?,
            access_key_id: var("TIERFS_S3_ACCESS_KEY_ID")?,
            secret_access_key: var("TIERFS_S3_SECRET_ACCESS_KEY")?,
        })
    }

    /// The backend's settings with its defaults, under `prefix`.
    fn settings(&self, prefix: &str) -> S3Settings {
        toml::from_str(&self.fields(prefix)).expect("s3 settings")
    }

    /// The settings of an `s3` backend under `prefix`, as TOML fields.
    fn fields(&self, prefix: &str) -> String {
        format!(
            "endpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.endpoint, self.region, self.bucket, self.access_key_id, self.secret_access_key
        )
    }

    /// A `[backends.NAME]` table of an `s3` backend under `prefix`.
    fn table(&self, name: &str, prefix: &str) -> String {
        format!("[backends.{name}]\ntype = \"s3\"\n{}", self.fields(prefix))
    }

    /// An `object_store` client built the way the backend builds its own.
    fn object_store(&self, settings: &S3Settings) -> AmazonS3 {
        let client = ClientOptions::new()
            .with_timeout(Duration::from_millis(settings.timeout_ms))
            .with_connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .with_allow_http(self.endpoint.starts_with("http://"));
        let retry = RetryConfig {
            max_retries: settings.retries,
            retry_timeout: Duration::from_millis(settings.timeout_ms),
            ..Default::default()
        };
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_client_options(client)
            .with_retry(retry)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("object_store client")
    }
}

/// A multi-threaded runtime: the clients' connection pools and the
/// concurrent benchmarks use both cores, like a daemon would.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Both sides of the `s3` pairs over one cluster, under a run prefix.
struct Sides {
    raw: AmazonS3,
    backend: S3Storage,
    run: String,
}

impl Sides {
    /// The raw path of the reference's `name` (the backend's keys live
    /// under `{run}/t/`, the reference's under `{run}/r/`).
    fn raw_path(&self, name: &str) -> Path {
        Path::from(format!("{}/r/{name}", self.run))
    }
}

/// Operations of one pair: cycle over `n` names, one or `CONCURRENT` at a time.
fn s3_pairs(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, sides: &Sides) {
    for (label, size, block) in [("4KiB", 4usize << 10, 32u64), ("4MiB", 4 << 20, 4)] {
        let value = common::value(size);
        let n = if size > 1 << 20 { 16 } else { 256 };
        let names: Vec<String> = (0..n).map(|i| format!("{label}/k{i:04}")).collect();
        let keys: Vec<Key> = names.iter().map(|n| Key::new(n.clone()).expect("key")).collect();
        let paths: Vec<Path> = names.iter().map(|n| sides.raw_path(n)).collect();
        rt.block_on(async {
            for (key, path) in keys.iter().zip(&paths) {
                sides.backend.put(key, value.clone(), PutOptions::default()).await.expect("populate");
                sides.raw.put(path, PutPayload::from_bytes(value.clone())).await.expect("populate");
            }
        });
        for width in [1, CONCURRENT] {
            let suffix = if width == 1 { String::new() } else { format!("_x{width}") };
            let (mut r, mut t) = (0usize, n / 2);
            common::interleaved(
                group,
                rt,
                &format!("s3_put_{label}{suffix}"),
                block,
                || {
                    let batch: Vec<Path> = (0..width).map(|_| next(&mut r, &paths).clone()).collect();
                    let (raw, value) = (&sides.raw, value.clone());
                    async move {
                        join_all(batch.iter().map(|p| raw.put(p, PutPayload::from_bytes(value.clone()))))
                            .await
                            .into_iter()
                            .for_each(|r| drop(r.expect("put")));
                    }
                },
                || {
                    let batch: Vec<Key> = (0..width).map(|_| next(&mut t, &keys).clone()).collect();
                    let (backend, value) = (&sides.backend, value.clone());
                    async move {
                        join_all(batch.iter().map(|k| backend.put(k, value.clone(), PutOptions::default())))
                            .await
                            .into_iter()
                            .for_each(|r| drop(r.expect("put")));
                    }
                },
            );
            let (mut r, mut t) = (0usize, n / 2);
            common::interleaved(
                group,
                rt,
                &format!("s3_get_{label}{suffix}"),
                block,
                || {
                    let batch: Vec<Path> = (0..width).map(|_| next(&mut r, &paths).clone()).collect();
                    let raw = &sides.raw;
                    async move {
                        let gets = batch.iter().map(|p| async move { raw.get(p).await?.bytes().await });
                        for value in join_all(gets).await {
                            assert_eq!(value.expect("get").len(), size);
                        }
                    }
                },
                || {
                    let batch: Vec<Key> = (0..width).map(|_| next(&mut t, &keys).clone()).collect();
                    let backend = &sides.backend;
                    async move {
                        for value in join_all(batch.iter().map(|k| backend.get(k))).await {
                            assert_eq!(value.expect("get").len(), size);
                        }
                    }
                },
            );
        }
    }
}

fn next<'a, T>(i: &mut usize, items: &'a [T]) -> &'a T {
    *i = (*i + 1) % items.len();
    &items[*i]
}

fn s3(c: &mut Criterion) {
    let Some(cluster) = Cluster::from_env() else {
        eprintln!("skipped: no TIERFS_S3_* variables (start a cluster with scripts/services/garage.sh, or run scripts/bench-distributed.sh)");
        return;
    };
    let rt = runtime();
    let run = format!("bench-{}", std::process::id());
    let settings = cluster.settings(&format!("{run}/t/"));
    let sides = Sides {
        raw: cluster.object_store(&settings),
        backend: rt.block_on(S3Storage::connect("cluster", &settings, None)).expect("connect"),
        run: run.clone(),
    };
    let mut group = c.benchmark_group("s3");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    s3_pairs(&mut group, &rt, &sides);
    group.finish();
    rt.block_on(remove_run(&sides.raw, &run));
}

/// Deletes every object under `run/`.
async fn remove_run(raw: &AmazonS3, run: &str) {
    let prefix = Path::from(run);
    let objects: Vec<_> = raw.list(Some(&prefix)).try_collect().await.expect("list the run");
    for chunk in objects.chunks(32) {
        join_all(chunk.iter().map(|o| raw.delete(&o.location))).await;
    }
}

/// A manager session over the cluster with `policy` (TOML of `[policy]`).
fn session(rt: &Runtime, cluster: &Cluster, prefix: &str, policy: &str) -> (StorageManager, Session) {
    let text = format!("{}{policy}", cluster.table("cluster", prefix));
    let config = Config::parse(&text, None).expect("config");
    let manager = rt.block_on(StorageManager::open(config)).expect("open the manager");
    let session = manager.session("bench");
    (manager, session)
}

fn prefer_cache(c: &mut Criterion) {
    let Some(cluster) = Cluster::from_env() else {
        eprintln!("skipped: no TIERFS_S3_* variables");
        return;
    };
    let rt = runtime();
    let run = format!("bench-{}-cache", std::process::id());
    let prefix = format!("{run}/");
    let (_bare_manager, bare) =
        session(&rt, &cluster, &prefix, "[policy]\ntype = \"always_local\"\nbackend = \"cluster\"\n");
    let (_cached_manager, cached) = session(
        &rt,
        &cluster,
        &prefix,
        "[policy]\ntype = \"prefer_cache\"\nprimary = \"cluster\"\ncache = { capacity_mib = 256 }\n",
    );
    let value = common::value(1 << 20);
    let keys: Vec<Key> = (0..WORKING_SET).map(|i| Key::new(format!("ws/k{i:03}")).expect("key")).collect();
    rt.block_on(async {
        for chunk in keys.chunks(8) {
            join_all(chunk.iter().map(|k| bare.put(k, value.clone(), PutOptions::default()))).await;
        }
        // Warm the cache: one pass over the working set.
        for key in &keys {
            cached.get(key).await.expect("warm");
        }
    });
    let mut group = c.benchmark_group("prefer_cache");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    let (mut r, mut t) = (0usize, WORKING_SET / 2);
    common::interleaved(
        &mut group,
        &rt,
        "prefer_cache_get_1MiB_ws100MiB",
        4,
        || {
            let (bare, key) = (&bare, next(&mut r, &keys));
            async move { assert_eq!(bare.get(key).await.expect("get").len(), 1 << 20) }
        },
        || {
            let (cached, key) = (&cached, next(&mut t, &keys));
            async move { assert_eq!(cached.get(key).await.expect("get").len(), 1 << 20) }
        },
    );
    group.finish();
    let settings = cluster.settings(&prefix);
    rt.block_on(remove_run(&cluster.object_store(&settings), &run));
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = s3, prefer_cache
}
criterion_main!(benches);
