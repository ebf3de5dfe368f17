use serde::Deserialize;

/// Settings of an `s3` backend.
///
/// ```toml
/// [backends.cluster]
/// type = "s3"
/// endpoint = "http://127.0.0.1:3900"   # leave out for AWS
/// region = "garage"                    # default "us-east-1"
/// bucket = "tierfs"                    # required
/// prefix = "prod/"                     # optional key prefix inside the bucket
/// access_key_id = "GK..."              # or AWS_ACCESS_KEY_ID
/// secret_access_key = "..."            # or AWS_SECRET_ACCESS_KEY
/// timeout_ms = 30000                   # per request
/// connect_timeout_ms = 5000
/// retries = 3                          # retries of a failed request (5xx, timeouts)
/// part_size_mib = 8                    # multipart part size; smaller values are one PUT
/// parts_in_flight = 8                  # parts of one streamed write uploading at once
/// conditional_writes = true            # default: probed at start-up (AWS and MinIO honour
///                                      # If-None-Match; Garage 2.5 ignores it)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL; `None` for AWS.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, ending in `/`.
    pub prefix: Option<String>,
    /// Access key; else `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret key; else `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Per-request timeout in milliseconds (default 30000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Connection timeout in milliseconds (default 5000).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Retries of a failed request (default 3).
    #[serde(default = "default_retries")]
    pub retries: usize,
    /// Multipart part size in MiB (default 8, 5 to 1024).
    #[serde(default = "default_part_size")]
    pub part_size_mib: u64,
    /// Parts of one streamed write uploading at once (default 8, 1 to 64);
    /// a writer holds up to this many parts in memory.
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
    /// Whether the store honours conditional writes (`If-None-Match: *`)
    /// for put-if-absent; when left out, probed at start-up.
    pub conditional_writes: Option<bool>,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_timeout() -> u64 {
    30_000
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_retries() -> usize {
    3
}
fn default_part_size() -> u64 {
    8
}
fn default_parts_in_flight() -> usize {
    8
}
