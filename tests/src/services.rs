//! The real services the distributed tests run against, described by the
//! environment that `scripts/test.sh services` sets up.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tierfs_core::{Config, Key, Storage, StorageManager};

use crate::plugins::workspace_root;

/// An environment variable the services stage must set.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through `scripts/test.sh services`, which starts the services")
    })
}

/// The `[backends.NAME]` table of an `s3` backend on the test cluster,
/// under a key prefix of its own so that tests do not see each other.
pub fn s3_backend_toml(name: &str, extra: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = format!("t{}-{}/", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    format!(
        "[backends.{name}]\ntype = \"s3\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n{extra}",
        required_env("TIERFS_S3_ENDPOINT"),
        required_env("TIERFS_S3_REGION"),
        required_env("TIERFS_S3_BUCKET"),
        required_env("TIERFS_S3_ACCESS_KEY_ID"),
        required_env("TIERFS_S3_SECRET_ACCESS_KEY"),
    )
}

/// [`s3_backend_toml`] on the cluster's second bucket.
pub fn s3_second_bucket_toml(name: &str, extra: &str) -> String {
    let first = format!("bucket = \"{}\"\n", required_env("TIERFS_S3_BUCKET"));
    let second = format!("bucket = \"{}\"\n", required_env("TIERFS_S3_SECOND_BUCKET"));
    s3_backend_toml(name, extra).replacen(&first, &second, 1)
}

/// The node URLs of the test Redis Cluster (three primaries).
pub fn redis_cluster_urls() -> Vec<String> {
    required_env("TIERFS_REDIS_CLUSTER_URLS").split(',').map(str::to_owned).collect()
}

/// The URL of the test `redis-server`.
pub fn redis_url() -> String {
    required_env("TIERFS_REDIS_URL")
}

/// Runs `scripts/services/garage.sh ACTION DIR NODE` on the test cluster.
fn garage(action: &str, node: u32) {
    let script: PathBuf = workspace_root().join("scripts/services/garage.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .arg(required_env("TIERFS_GARAGE_DIR"))
        .arg(node.to_string())
        .status()
        .expect("run garage.sh");
    assert!(status.success(), "garage.sh {action} {node} failed");
}

/// Stopped Garage nodes, started again when dropped (also on a failed
/// assertion), so one test's outage never leaks into the next. With two
/// of the three nodes down, the cluster answers 503.
pub struct Down(Vec<u32>);

impl Down {
    /// Stops `nodes` (1 to 3).
    pub fn stop(nodes: &[u32]) -> Down {
        for n in nodes {
            garage("stop-node", *n);
        }
        Down(nodes.to_vec())
    }

    /// Starts the nodes again.
    pub fn restart(mut self) {
        for n in std::mem::take(&mut self.0) {
            garage("start-node", n);
        }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        for n in std::mem::take(&mut self.0) {
            garage("start-node", n);
        }
    }
}

/// Waits until the cluster takes writes (after an earlier test's restart),
/// for at most 90 s.
pub async fn wait_for_cluster() {
    let text = s3_backend_toml("probe", "timeout_ms = 3000\nconnect_timeout_ms = 1000\nretries = 2\n");
    let start = Instant::now();
    loop {
        if let Ok(config) = Config::parse(&text, None) {
            if let Ok(m) = StorageManager::open(config).await {
                let ok = m
                    .session("t")
                    .put(&Key::new("up").unwrap(), Bytes::from_static(b"1"), Default::default())
                    .await;
                if ok.is_ok() {
                    return;
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(90), "the cluster is not taking writes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
