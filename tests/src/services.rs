//! The real services the distributed tests run against, described by the
//! environment that `scripts/test.sh services` sets up.

use std::sync::atomic::{AtomicU64, Ordering};

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

/// The URL of the test `redis-server`.
pub fn redis_url() -> String {
    required_env("TIERFS_REDIS_URL")
}
