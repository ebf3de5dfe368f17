//! Bad settings give a clear error at start-up naming the setting.

use std::time::{Duration, Instant};

use tierfs_core::{Config, ErrorKind, StorageManager};
use tierfs_tests::services::required_env;

async fn start_error(text: &str) -> String {
    let config = Config::parse(text, Some(std::path::Path::new("/etc/tierfs/tierfs.toml"))).unwrap();
    let start = Instant::now();
    let e = StorageManager::open(config).await.expect_err("started with bad settings");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?} to refuse", start.elapsed());
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let text = e.to_string();
    assert!(text.contains("/etc/tierfs/tierfs.toml"), "{text}");
    text
}

fn table(endpoint: &str, bucket: &str, key: &str, secret: &str) -> String {
    format!(
        "[backends.cluster]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"{}\"\nbucket = \"{bucket}\"\n\
         access_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\ntimeout_ms = 2000\nconnect_timeout_ms = 500\nretries = 1\n",
        required_env("TIERFS_S3_REGION")
    )
}

#[tokio::test]
async fn a_wrong_endpoint_names_the_endpoint() {
    let (key, secret) =
        (required_env("TIERFS_S3_ACCESS_KEY_ID"), required_env("TIERFS_S3_SECRET_ACCESS_KEY"));
    let text =
        start_error(&table("http://127.0.0.1:9", &required_env("TIERFS_S3_BUCKET"), &key, &secret)).await;
    assert!(text.contains("`backends.cluster.endpoint`"), "{text}");
}

#[tokio::test]
async fn wrong_credentials_name_the_key() {
    let endpoint = required_env("TIERFS_S3_ENDPOINT");
    let key = required_env("TIERFS_S3_ACCESS_KEY_ID");
    let text = start_error(&table(&endpoint, &required_env("TIERFS_S3_BUCKET"), &key, &"0".repeat(64))).await;
    assert!(text.contains("`backends.cluster.access_key_id`"), "{text}");
    let text = start_error(&table(
        &endpoint,
        &required_env("TIERFS_S3_BUCKET"),
        "GK000000000000000000000000",
        &"0".repeat(64),
    ))
    .await;
    assert!(text.contains("`backends.cluster.access_key_id`"), "{text}");
}

#[tokio::test]
async fn a_missing_bucket_names_the_bucket() {
    let (key, secret) =
        (required_env("TIERFS_S3_ACCESS_KEY_ID"), required_env("TIERFS_S3_SECRET_ACCESS_KEY"));
    let text =
        start_error(&table(&required_env("TIERFS_S3_ENDPOINT"), "no-such-bucket", &key, &secret)).await;
    assert!(text.contains("`backends.cluster.bucket`"), "{text}");
}

#[tokio::test]
async fn missing_credentials_and_bad_values_are_refused_before_connecting() {
    let text = format!(
        "[backends.c]\ntype = \"s3\"\nbucket = \"b\"\nendpoint = \"{}\"\n",
        required_env("TIERFS_S3_ENDPOINT")
    );
    // Credentials are looked up in the environment too: clear them for this check.
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        let e = start_error(&text).await;
        assert!(e.contains("`backends.c.access_key_id`") && e.contains("AWS_ACCESS_KEY_ID"), "{e}");
    }
    let e = start_error(&format!("{text}part_size_mib = 1\n")).await;
    assert!(e.contains("`backends.c.part_size_mib`: 1 is out of range; allowed: 5 to 1024"), "{e}");
    let e = start_error(&format!("{text}parts_in_flight = 0\n")).await;
    assert!(e.contains("`backends.c.parts_in_flight`: 0 is out of range; allowed: 1 to 64"), "{e}");
    let e = start_error(&format!("{text}prefx = \"a/\"\n")).await;
    assert!(e.contains("unknown field `prefx`"), "{e}");
}
