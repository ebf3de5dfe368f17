//! TierFS on real distributed components: a three-node Garage cluster (S3),
//! redis-server and a three-primary Redis Cluster, started by
//! `scripts/test.sh services`.

mod behaviour;
mod redis_cluster;
mod settings;

use std::sync::Arc;

use tierfs_core::{Config, StorageManager, StorageRegistry};
use tierfs_tests::Fixture;

/// A manager over `text` (`{dir}` becomes a temporary directory).
pub async fn manager(text: &str) -> (StorageManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace("{dir}", dir.path().to_str().unwrap());
    let config = Config::parse(&text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (StorageManager::open(config).await.unwrap_or_else(|e| panic!("{e}")), dir)
}

/// A fixture over a manager session.
pub async fn manager_fixture(text: String) -> Fixture {
    let (m, dir) = manager(&text).await;
    Fixture::new(Arc::new(m.session("tester")), vec![Box::new(dir), Box::new(m)])
}

/// A bare backend built from its table.
pub async fn backend_fixture(text: String) -> Fixture {
    let config = Config::parse(&text, None).unwrap();
    let backends = StorageRegistry::with_builtins().build(&config).await.unwrap_or_else(|e| panic!("{e}"));
    let storage = backends.into_values().next().unwrap();
    Fixture::new(storage, vec![])
}
