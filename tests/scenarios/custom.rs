//! A custom policy registered through the registry and named in
//! configuration: small values on one backend, large ones on another.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use tierfs_core::policies::{PolicyContext, PolicyPlugin};
use tierfs_core::{
    BatchOp, ByteStream, Capabilities, Config, ErrorKind, Key, ListOptions, ListPage, MergeSource,
    ObjectMeta, PutOptions, Result, Storage, StorageManager, StorageRegistry, ValueWriter,
};

#[derive(Debug)]
struct SplitBySize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitSettings {
    threshold_kib: u64,
}

#[derive(Debug)]
struct Split {
    small: Arc<dyn Storage>,
    large: Arc<dyn Storage>,
    threshold: u64,
}

impl Split {
    async fn holder(&self, key: &Key) -> Result<Arc<dyn Storage>> {
        match self.small.stat(key).await {
            Ok(_) => Ok(self.small.clone()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(self.large.clone()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Storage for Split {
    fn name(&self) -> &str {
        "split_by_size"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { range_read: true, streaming: true, ..Default::default() }
    }
    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.holder(key).await?.get(key).await
    }
    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.holder(key).await?.get_range(key, range).await
    }
    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let (to, other) = if (value.len() as u64) < self.threshold {
            (&self.small, &self.large)
        } else {
            (&self.large, &self.small)
        };
        let meta = to.put(key, value, options).await?;
        other.delete(key).await?;
        Ok(meta)
    }
    async fn delete(&self, key: &Key) -> Result<()> {
        self.small.delete(key).await?;
        self.large.delete(key).await
    }
    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.holder(key).await?.stat(key).await
    }
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let sources = [
            MergeSource { storage: self.small.clone(), keep: None },
            MergeSource { storage: self.large.clone(), keep: None },
        ];
        tierfs_core::merge_list(&sources, options).await
    }
    async fn batch(&self, _ops: Vec<BatchOp>) -> Result<()> {
        Err(tierfs_core::Error::new(ErrorKind::Unsupported, "split_by_size has no atomic batch"))
    }
    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.holder(key).await?.read(key, range).await
    }
    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.small.delete(key).await?;
        self.large.write(key, options).await
    }
}

#[async_trait]
impl PolicyPlugin for SplitBySize {
    fn name(&self) -> &str {
        "split_by_size"
    }
    async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let settings: SplitSettings = context.parse()?;
        if context.backends.len() != 2 {
            return Err(context.error("backends", "split_by_size needs exactly two backends: small, large"));
        }
        Ok(Arc::new(Split {
            small: context.backends[0].clone(),
            large: context.backends[1].clone(),
            threshold: settings.threshold_kib * 1024,
        }))
    }
}

const CONFIG: &str = r#"
[backends.small]
type = "memory"
[backends.large]
type = "memory"
[policy]
type = "custom"
name = "split_by_size"
backends = ["small", "large"]
settings = { threshold_kib = 4 }
"#;

#[tokio::test]
async fn a_custom_policy_from_the_registry_routes_by_size() {
    let registry = Arc::new(StorageRegistry::with_builtins());
    registry.register_policy(Arc::new(SplitBySize)).unwrap();
    let manager =
        StorageManager::with_registry(Config::parse(CONFIG, None).unwrap(), registry.clone()).await.unwrap();
    let store = manager.session("tester");
    let (a, b) = (Key::new("a").unwrap(), Key::new("b").unwrap());
    store.put(&a, Bytes::from(vec![1u8; 100]), Default::default()).await.unwrap();
    store.put(&b, Bytes::from(vec![2u8; 10_000]), Default::default()).await.unwrap();
    assert_eq!(manager.backend("small").unwrap().stat(&a).await.unwrap().size, 100);
    assert_eq!(manager.backend("large").unwrap().stat(&b).await.unwrap().size, 10_000);
    assert_eq!(store.get(&b).await.unwrap().len(), 10_000);
    // Growing past the threshold moves the key.
    store.put(&a, Bytes::from(vec![1u8; 8192]), Default::default()).await.unwrap();
    assert_eq!(manager.backend("small").unwrap().stat(&a).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(manager.route_of("a").policy, "custom");

    // Bad settings and unknown policies are refused with the field.
    let bad = CONFIG.replace("threshold_kib", "threshold");
    let e = StorageManager::with_registry(Config::parse(&bad, None).unwrap(), registry.clone())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("`policy.settings`: unknown field `threshold`"), "{e}");
    let unknown = CONFIG.replace("name = \"split_by_size\"", "name = \"fastest\"");
    let e = StorageManager::open(Config::parse(&unknown, None).unwrap()).await.err().unwrap();
    assert!(e.to_string().contains("unknown custom policy `fastest`; registered policies: none"), "{e}");
}
