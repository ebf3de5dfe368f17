//! `S3Storage`: the distributed backend, any S3-compatible object store
//! (Garage, MinIO, Ceph RGW, AWS S3) through the `object_store` crate.
//!
//! - Values up to `part_size_mib` go up in one PUT; larger ones, and every
//!   streamed write past one part, as a multipart upload of parts uploaded
//!   as they fill (memory bounded by a few parts).
//! - Range reads in one request (a HEAD only for a range at or past the
//!   end), streamed reads, paginated listings (`list_with_offset`
//!   for recursive listings, `list_with_delimiter` for directories).
//! - Metadata travels in one `x-amz-meta-tierfs` header (percent-encoded
//!   JSON, so any UTF-8 and any key case survive); listings do not return
//!   metadata (S3 does not), `stat` does.
//! - Conditional writes (`If-None-Match: *`) for put-if-absent, when
//!   `conditional_writes` is on (or the start-up probe found the store
//!   honours them). Otherwise put-if-absent is refused with `Unsupported`
//!   naming the setting, never degraded to an overwrite; so is a
//!   put-if-absent past one part (S3 cannot complete a multipart upload
//!   conditionally).
//! - Errors: not found, precondition, 403 and friends map to their kinds; a
//!   timeout, a refused connection or a 5xx is a retryable `Unavailable`,
//!   after `retries` retries inside the client.
//! - Metadata-only updates copy the object onto itself on the server;
//!   patches of large values upload the changed parts and have the store
//!   copy the others from the object itself (`patch.rs`).
//! - At start-up one listing checks the endpoint, the credentials and the
//!   bucket, and a failure names the setting to fix.
//!
//! Capabilities: range read, persistent, streaming, partial write,
//! conditional put (as configured); no atomic batch, no rename.

mod copy;
mod errors;
mod http;
mod listing;
mod meta;
mod patch;
mod path;
mod settings;
mod traffic;
mod writer;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions as OsPutOptions, PutPayload, RetryConfig,
};

pub use settings::S3Settings;

use crate::config::BackendSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, MetadataChanges, ObjectMeta, Patch,
    PutOptions, Storage, ValueWriter,
};

/// Attempts of a metadata update or a patch that meets a concurrent write.
const COPY_ATTEMPTS: usize = 3;

/// What one attempt of [`S3Storage::conditioned`] came to.
enum Attempt<T> {
    Done(T),
    /// The object changed since its state was read: read it and try again.
    Changed,
    /// The store cannot do it in place: the caller rewrites the value.
    Rewrite,
}

/// The metadata header (after `x-amz-meta-`).
const META_ATTRIBUTE: &str = "tierfs";

/// Names of the objects the start-up probe of conditional writes creates
/// and deletes at the root of the backend's prefix. Listings leave them
/// out: a store may go on listing a deleted object for a moment (Garage
/// does), and a mount started then would show it.
pub(super) const PROBE_PREFIX: &str = ".tierfs-probe-";

/// An S3 bucket (or a prefix of one) as a backend.
#[derive(Debug, Clone)]
pub struct S3Storage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    store: AmazonS3,
    /// The configured key prefix, as path segments.
    prefix: Vec<String>,
    part_size: usize,
    parts_in_flight: usize,
    conditional: bool,
    listings: listing::DirCache,
    copier: copy::MetadataCopier,
    /// Held shared by puts as they publish and exclusively by a metadata
    /// update from its read to its copy: the store can condition a copy on
    /// the ETag, which names the bytes, not the metadata, so a put of the
    /// same bytes with other metadata would not stop a stale copy.
    locks: crate::key_locks::KeyLocks,
    /// Bytes of request and response bodies (see `traffic.rs`).
    traffic: Arc<traffic::TrafficCounts>,
}

impl S3Storage {
    /// Connects with `settings`, checking endpoint, credentials and bucket
    /// with one listing; `context` words errors with the configuration file
    /// and field.
    pub async fn connect(
        name: &str,
        settings: &S3Settings,
        context: Option<&BackendSettings<'_>>,
    ) -> Result<Self> {
        let field_error = |field: &str, message: &str| match context {
            Some(c) => c.error(field, message),
            None => Error::new(ErrorKind::Config, format!("`{field}`: {message}")),
        };
        if settings.bucket.is_empty() {
            return Err(field_error("bucket", "is empty; name the bucket"));
        }
        if !(5..=1024).contains(&settings.part_size_mib) {
            return Err(field_error(
                "part_size_mib",
                &format!("{} is out of range; allowed: 5 to 1024", settings.part_size_mib),
            ));
        }
        if !(1..=64).contains(&settings.parts_in_flight) {
            return Err(field_error(
                "parts_in_flight",
                &format!("{} is out of range; allowed: 1 to 64", settings.parts_in_flight),
            ));
        }
        let prefix: Vec<String> = match &settings.prefix {
            None => Vec::new(),
            Some(p) => {
                let valid = p.ends_with('/') && crate::key::validate_prefix(p).is_ok();
                if !valid {
                    return Err(field_error(
                        "prefix",
                        &format!("`{p}` is not a key prefix; write it like `tenant/`"),
                    ));
                }
                p.trim_end_matches('/').split('/').map(str::to_owned).collect()
            }
        };
        let access = settings.access_key_id.clone().or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok());
        let secret =
            settings.secret_access_key.clone().or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok());
        let (Some(access), Some(secret)) = (access, secret) else {
            return Err(field_error(
                "access_key_id",
                "no credentials: set `access_key_id` and `secret_access_key`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        };
        let client_options = ClientOptions::new()
            .with_timeout(Duration::from_millis(settings.timeout_ms))
            .with_connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .with_allow_http(settings.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
        let retry = RetryConfig {
            max_retries: settings.retries,
            retry_timeout: Duration::from_millis(settings.timeout_ms),
            ..Default::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_access_key_id(access)
            .with_secret_access_key(secret)
            .with_client_options(client_options.clone())
            .with_retry(retry)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let traffic = Arc::new(traffic::TrafficCounts::default());
        builder = match http::QuickAckConnector::for_endpoint(settings) {
            Some(quick) => builder
                .with_http_connector(traffic::CountingConnector { inner: quick, counts: traffic.clone() }),
            None => builder.with_http_connector(traffic::CountingConnector {
                inner: object_store::client::ReqwestConnector::default(),
                counts: traffic.clone(),
            }),
        };
        let store = builder
            .build()
            .map_err(|e| field_error("endpoint", &format!("cannot set up the S3 client: {e}")))?;
        let mut storage = S3Storage {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                store,
                prefix,
                part_size: (settings.part_size_mib as usize) << 20,
                parts_in_flight: settings.parts_in_flight,
                conditional: settings.conditional_writes.unwrap_or(false),
                listings: listing::DirCache::default(),
                copier: copy::MetadataCopier::new(settings, &client_options, &traffic)
                    .map_err(|e| field_error("endpoint", &format!("cannot set up the S3 client: {e}")))?,
                locks: crate::key_locks::KeyLocks::new(),
                traffic,
            }),
        };
        storage.check(settings, &field_error).await?;
        if settings.conditional_writes.is_none() {
            let honoured = storage.probe_conditional_writes().await?;
            let inner = Arc::get_mut(&mut storage.inner).expect("not shared yet");
            inner.conditional = honoured;
        }
        Ok(storage)
    }

    /// Writes a probe object twice with `If-None-Match: *`: a store that
    /// refuses the second write honours conditional writes.
    async fn probe_conditional_writes(&self) -> Result<bool> {
        let key = Key::new(format!(
            "{PROBE_PREFIX}{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        ))?;
        let path = self.path(&key);
        let create = || OsPutOptions { mode: PutMode::Create, ..Default::default() };
        let first = self.inner.store.put_opts(&path, PutPayload::from_static(b"probe"), create()).await;
        let second = self.inner.store.put_opts(&path, PutPayload::from_static(b"probe"), create()).await;
        let _ = self.inner.store.delete(&path).await;
        first.map_err(|e| self.err(e, "open", &key))?;
        let honoured = matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })
        );
        tracing::debug!(backend = %self.inner.name, honoured, "probed conditional writes");
        Ok(honoured)
    }

    /// One listing: proves the endpoint answers, the credentials are
    /// accepted and the bucket exists.
    async fn check(
        &self,
        settings: &S3Settings,
        field_error: &(dyn Fn(&str, &str) -> Error + Sync),
    ) -> Result<()> {
        let probe = path::to_path(&self.inner.prefix, "probe");
        let first = self.inner.store.list(Some(&probe)).next().await;
        let Some(Err(e)) = first else { return Ok(()) };
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        let endpoint = settings.endpoint.as_deref().unwrap_or("AWS");
        Err(match e {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => field_error(
                "access_key_id",
                &format!("the object store at {endpoint} refused the credentials ({text}); check `access_key_id` and `secret_access_key`"),
            ),
            _ if lower.contains("nosuchbucket") || lower.contains("bucket") && lower.contains("not") => field_error(
                "bucket",
                &format!("bucket `{}` does not exist at {endpoint} ({text}); create it or fix `bucket`", settings.bucket),
            ),
            _ if lower.contains("403") || lower.contains("forbidden") || lower.contains("accessdenied") || lower.contains("signature") => field_error(
                "access_key_id",
                &format!("the object store at {endpoint} refused the credentials ({text}); check `access_key_id` and `secret_access_key`"),
            ),
            _ => field_error(
                "endpoint",
                &format!("cannot reach the object store at {endpoint} ({text}); check `endpoint` and that the store runs"),
            ),
        })
    }

    /// The body of `result` as a stream of TierFS results.
    fn stream(&self, key: &Key, result: object_store::GetResult) -> ByteStream {
        let (this, key) = (self.clone(), key.clone());
        result.into_stream().map_err(move |e| this.err(e, "read", &key)).boxed()
    }

    fn err(&self, e: object_store::Error, op: &'static str, key: &str) -> Error {
        errors::map(e, &self.inner.name, op, key)
    }

    fn path(&self, key: &str) -> object_store::path::Path {
        path::to_path(&self.inner.prefix, key)
    }

    async fn head(&self, key: &Key, op: &'static str) -> Result<ObjectMeta> {
        let options = GetOptions { head: true, ..Default::default() };
        let result =
            self.inner.store.get_opts(&self.path(key), options).await.map_err(|e| self.err(e, op, key))?;
        Ok(meta::object_meta(key.clone(), &result.meta, &result.attributes))
    }

    /// Reads `key`'s state, checks `condition` against it and runs
    /// `attempt` with it, under the key's write lock (writes of this
    /// process wait), again while the attempt finds the object changed
    /// meanwhile, at most [`COPY_ATTEMPTS`] times; then `Conflict`, worded
    /// with `what` ("patch it"). `Ok(None)`: the attempt asked for a
    /// rewrite, to be made by the caller with the lock released (the
    /// rewrite's own put takes it).
    async fn conditioned<T, F>(
        &self,
        key: &Key,
        op: &'static str,
        what: &str,
        condition: &Condition,
        mut attempt: impl FnMut(ObjectMeta) -> F,
    ) -> Result<Option<T>>
    where
        F: std::future::Future<Output = Result<Attempt<T>>>,
    {
        let context =
            |e: Error| e.or_key(key.as_str()).with_backend(self.inner.name.clone()).with_operation(op);
        let exclusive = self.inner.locks.write(key.as_str()).await;
        for _ in 0..COPY_ATTEMPTS {
            let current = self.head(key, op).await?;
            condition.check(&current).map_err(context)?;
            match attempt(current).await.map_err(context)? {
                Attempt::Done(done) => return Ok(Some(done)),
                Attempt::Changed => continue,
                Attempt::Rewrite => {
                    drop(exclusive);
                    return Ok(None);
                }
            }
        }
        Err(context(Error::new(
            ErrorKind::Conflict,
            format!("the value changed during each of {COPY_ATTEMPTS} attempts to {what}; try again"),
        )))
    }

    fn attributes(&self, metadata: &crate::storage::Metadata) -> Attributes {
        let mut attributes = Attributes::new();
        if !metadata.is_empty() {
            attributes.insert(Attribute::Metadata(META_ATTRIBUTE.into()), meta::encode(metadata).into());
        }
        attributes
    }

    /// Refuses put-if-absent when the store does not honour conditional
    /// writes: the guarantee cannot be given, and an overwrite would break it.
    fn check_conditional(&self, options: &PutOptions, key: &Key, op: &'static str) -> Result<()> {
        if !options.if_not_exists || self.inner.conditional {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "put-if-absent needs conditional writes (If-None-Match), which the store behind backend \
                 `{}` does not honour (conditional_writes is off or the start-up probe found them \
                 ignored): use a store that honours them and set `conditional_writes = true`, or \
                 write without if_not_exists",
                self.inner.name
            ),
        )
        .with_key(key.as_str())
        .with_backend(self.inner.name.clone())
        .with_operation(op))
    }

    async fn put_whole(
        &self,
        key: &Key,
        value: Bytes,
        options: &PutOptions,
        op: &'static str,
    ) -> Result<ObjectMeta> {
        self.check_conditional(options, key, op)?;
        let mode = if options.if_not_exists { PutMode::Create } else { PutMode::Overwrite };
        let put = OsPutOptions { mode, attributes: self.attributes(&options.metadata), ..Default::default() };
        let size = value.len() as u64;
        let _publishing = self.inner.locks.read(key.as_str()).await;
        let result = self
            .inner
            .store
            .put_opts(&self.path(key), PutPayload::from_bytes(value), put)
            .await
            .map_err(|e| self.err(e, op, key))?;
        self.inner.listings.clear();
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            modified: std::time::SystemTime::now(),
            version: result.e_tag.unwrap_or_default(),
            metadata: options.metadata.clone(),
        })
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn traffic(&self) -> Option<crate::metrics::Traffic> {
        Some(self.inner.traffic.snapshot())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batch: false,
            range_read: true,
            rename: false,
            persistent: true,
            shared: true,
            conditional_put: self.inner.conditional,
            streaming: true,
            partial_write: true,
        }
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        let result = self
            .inner
            .store
            .get_opts(&self.path(key), GetOptions::default())
            .await
            .map_err(|e| self.err(e, "get", key))?;
        result.bytes().await.map_err(|e| self.err(e, "get", key))
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let stream = self.read(key, Some(range)).await?;
        crate::storage::collect_stream(stream).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        if value.len() <= self.inner.part_size {
            return self.put_whole(key, value, &options, "put").await;
        }
        let mut writer = self.write(key, options).await?;
        writer.write(value).await?;
        writer.finish().await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.inner.store.delete(&self.path(key)).await.or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(self.err(e, "delete", key)),
        })?;
        self.inner.listings.clear();
        Ok(())
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.head(key, "stat").await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate().map_err(|e| e.with_backend(self.inner.name.clone()))?;
        listing::list(self, options).await
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let first = ops.first().map(|o| o.key().to_string()).unwrap_or_default();
        Err(Error::new(
            ErrorKind::Unsupported,
            "an S3 store cannot apply a batch atomically; send the operations one by one, or use a redundant or cached policy over a local backend",
        )
        .with_key(first)
        .with_backend(self.inner.name.clone())
        .with_operation("batch"))
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let mut options = GetOptions::default();
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(crate::storage::clamp_range(r, 0).unwrap_err().with_key(key.as_str()));
            }
            if r.start < r.end {
                // One request: S3 answers a range running past the end with
                // the bytes there are. Only a range starting at or past the
                // end is refused (416); that is answered below.
                let options = GetOptions { range: Some(GetRange::Bounded(r.clone())), ..Default::default() };
                match self.inner.store.get_opts(&self.path(key), options).await {
                    Ok(result) => return Ok(self.stream(key, result)),
                    Err(e @ object_store::Error::NotFound { .. }) => return Err(self.err(e, "read", key)),
                    // Anything else (416 for a range past the end, or a
                    // store that is down): the size decides below, and a
                    // store that is down fails that request too.
                    Err(_) => {}
                }
            }
            // An empty or out-of-bounds range: S3 refuses those (416), so
            // check the size and answer locally.
            let size = self.head(key, "read").await?.size;
            let clamped = crate::storage::clamp_range(r, size)?;
            if clamped.is_empty() {
                return Ok(futures::stream::empty().boxed());
            }
            options.range = Some(GetRange::Bounded(clamped.start as u64..clamped.end as u64));
        }
        let result = self
            .inner
            .store
            .get_opts(&self.path(key), options)
            .await
            .map_err(|e| self.err(e, "read", key))?;
        Ok(self.stream(key, result))
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.check_conditional(&options, key, "write")?;
        Ok(Box::new(writer::S3Writer::new(self.clone(), key.clone(), options)))
    }

    /// Changed parts uploaded, the others copied by the store from the
    /// object itself (see `patch.rs`); small values are rewritten.
    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        self.patch_in_parts(key, patch, condition).await
    }

    /// A server-side copy of the object onto itself with the new metadata
    /// (`x-amz-metadata-directive: REPLACE`); the value's bytes do not move.
    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        const OP: &str = "set_metadata";
        // Each attempt copies only if the object still has the bytes read
        // (its ETag); a write of other bytes in between makes it start again.
        let updated = self
            .conditioned(key, OP, "update its metadata", condition, |current: ObjectMeta| async move {
                let metadata = changes.applied_to(current.metadata.clone());
                let encoded = (!metadata.is_empty()).then(|| meta::encode(&metadata));
                let credential = self
                    .inner
                    .store
                    .credentials()
                    .get_credential()
                    .await
                    .map_err(|e| self.err(e, OP, key))?;
                let etag = (!current.version.is_empty()).then_some(current.version.as_str());
                let copied = self
                    .inner
                    .copier
                    .copy_in_place(
                        &credential,
                        &self.path(key),
                        etag,
                        encoded.as_deref().map(|v| (META_ATTRIBUTE, v)),
                    )
                    .await?;
                Ok(match copied {
                    copy::Copied::Done { etag: Some(version), modified } => {
                        self.inner.listings.clear();
                        Attempt::Done(ObjectMeta {
                            key: key.clone(),
                            size: current.size,
                            modified: modified.unwrap_or_else(std::time::SystemTime::now),
                            version,
                            metadata,
                        })
                    }
                    copy::Copied::Done { etag: None, .. } => {
                        self.inner.listings.clear();
                        Attempt::Done(self.head(key, OP).await?)
                    }
                    copy::Copied::Changed => Attempt::Changed,
                    copy::Copied::TooLarge => Attempt::Rewrite,
                })
            })
            .await?;
        match updated {
            Some(meta) => Ok(meta),
            None => crate::storage::rewrite_metadata(self, key, changes, condition).await,
        }
    }
}
