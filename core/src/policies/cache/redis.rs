//! `RedisCacheTier`: the cache tier in a Redis server or cluster.
//!
//! Each entry is one Redis string under `<prefix><key>`: a 4-byte length,
//! the entry's metadata as JSON, then the value; expiry is Redis' own
//! (`PX`) when a TTL is set, and eviction is left to Redis' `maxmemory`
//! policy. Every call is bounded by a timeout (default 250 ms), and after
//! a failure the tier stays quiet for a second before reconnecting, so an
//! outage costs reads at most one timeout and never fails them:
//! `CacheStorage` treats every tier error as a miss.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use serde::{Deserialize, Serialize};

use super::tier::{CacheTier, CachedValue};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{Metadata, ObjectMeta};

/// How long after a failure the tier waits before connecting again.
const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Where and how to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTierOptions {
    /// `redis://host:port/db` URLs; several (or `cluster`) for a cluster.
    pub urls: Vec<String>,
    /// Whether the URLs are nodes of a Redis Cluster.
    pub cluster: bool,
    /// Prefix of every Redis key this tier writes.
    pub key_prefix: String,
    /// Entry lifetime, if any.
    pub ttl: Option<Duration>,
    /// Largest value cached.
    pub max_entry_bytes: u64,
    /// Bound of every call.
    pub timeout: Duration,
}

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// One node of a Redis Cluster, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    host: String,
    port: u16,
}

impl Conn {
    /// Runs `cmd` where its key belongs, or on `node` of a cluster.
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        node: Option<&Node>,
    ) -> redis::RedisResult<T> {
        match (self, node) {
            (Conn::Single(c), _) => cmd.query_async(c).await,
            (Conn::Cluster(c), None) => cmd.query_async(c).await,
            (Conn::Cluster(c), Some(node)) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let at = SingleNodeRoutingInfo::ByAddress { host: node.host.clone(), port: node.port };
                let value = c.route_command(cmd.clone(), RoutingInfo::SingleNode(at)).await?;
                Ok(T::from_redis_value(value)?)
            }
        }
    }
}

/// The primaries that serve slots, from the answer to `CLUSTER NODES`
/// (`<id> <host:port@bus> <flags> ...` per line).
fn primaries(nodes: &str) -> Vec<Node> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (addr, flags) = (fields.nth(1)?, fields.next()?);
            let serving = flags.split(',').any(|f| f == "master") && !flags.contains("fail");
            let (host, port) = addr.split('@').next()?.rsplit_once(':')?;
            let port = port.parse().ok()?;
            serving.then(|| Node { host: host.to_owned(), port })
        })
        .collect()
}

#[derive(Default)]
struct Link {
    conn: Option<Conn>,
    failed_at: Option<Instant>,
}

/// A cache tier in Redis.
pub struct RedisCacheTier {
    options: RedisTierOptions,
    link: Mutex<Link>,
}

impl std::fmt::Debug for RedisCacheTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCacheTier").field("options", &self.options).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredMeta {
    key: String,
    size: u64,
    modified_ns: u64,
    version: String,
    metadata: Metadata,
}

impl RedisCacheTier {
    /// A tier that connects on first use (a Redis that is down at start-up
    /// only means misses).
    pub fn new(options: RedisTierOptions) -> Result<Arc<Self>> {
        for url in &options.urls {
            redis::Client::open(url.as_str()).map_err(|e| {
                Error::new(ErrorKind::Config, format!("`cache.redis_url`: `{url}` is not a Redis URL ({e}); write it like redis://127.0.0.1:6379"))
            })?;
        }
        if options.urls.is_empty() {
            return Err(Error::new(ErrorKind::Config, "`cache.redis_url`: give at least one Redis URL"));
        }
        Ok(Arc::new(RedisCacheTier { options, link: Mutex::new(Link::default()) }))
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::Unavailable, format!("the Redis cache failed: {what}"))
            .with_backend("redis")
            .retryable(true)
    }

    async fn connect(&self) -> Result<Conn> {
        let urls = &self.options.urls;
        let conn = if self.options.cluster {
            let client =
                redis::cluster::ClusterClient::new(urls.iter().map(String::as_str).collect::<Vec<_>>())
                    .map_err(|e| self.unavailable(e))?;
            Conn::Cluster(client.get_async_connection().await.map_err(|e| self.unavailable(e))?)
        } else {
            let client = redis::Client::open(urls[0].as_str()).map_err(|e| self.unavailable(e))?;
            Conn::Single(client.get_multiplexed_async_connection().await.map_err(|e| self.unavailable(e))?)
        };
        Ok(conn)
    }

    /// Runs `cmd` within the timeout, connecting if needed; a failure drops
    /// the connection and quiets the tier for a second.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T> {
        self.run_on(cmd, None).await
    }

    /// [`run`](Self::run) on one node of a cluster.
    async fn run_on<T: redis::FromRedisValue>(&self, cmd: redis::Cmd, node: Option<&Node>) -> Result<T> {
        let existing = {
            let link = self.link.lock();
            if link.conn.is_none() && link.failed_at.is_some_and(|t| t.elapsed() < QUIET_AFTER_FAILURE) {
                return Err(self.unavailable("unreachable a moment ago; not retried yet"));
            }
            link.conn.clone()
        };
        let attempt = async {
            let mut conn = match existing {
                Some(conn) => conn,
                None => {
                    let conn = self.connect().await?;
                    self.link.lock().conn = Some(conn.clone());
                    conn
                }
            };
            conn.query::<T>(&cmd, node).await.map_err(|e| self.unavailable(e))
        };
        let result = match tokio::time::timeout(self.options.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.options.timeout))),
        };
        if result.is_err() {
            let mut link = self.link.lock();
            link.conn = None;
            link.failed_at = Some(Instant::now());
        }
        result
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}{}", self.options.key_prefix, key)
    }

    /// Removes the entries of one server (or one cluster node).
    async fn clear_on(&self, node: Option<&Node>) -> Result<()> {
        let pattern = format!("{}*", self.options.key_prefix);
        let mut cursor: u64 = 0;
        loop {
            let scan =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(500).clone();
            let (next, keys): (u64, Vec<String>) = self.run_on(scan, node).await?;
            match node {
                None if !keys.is_empty() => self.run::<()>(redis::cmd("UNLINK").arg(keys).clone()).await?,
                None => {}
                Some(_) => {
                    for key in keys {
                        self.run::<()>(redis::cmd("UNLINK").arg(key).clone()).await?;
                    }
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

fn encode(value: &CachedValue) -> Vec<u8> {
    let meta = &value.meta;
    let stored = StoredMeta {
        key: meta.key.to_string(),
        size: meta.size,
        modified_ns: meta.modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64,
        version: meta.version.clone(),
        metadata: meta.metadata.clone(),
    };
    let json = serde_json::to_vec(&stored).expect("metadata serializes");
    let mut out = Vec::with_capacity(4 + json.len() + value.value.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&value.value);
    out
}

fn decode(raw: Vec<u8>) -> Option<CachedValue> {
    let len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    let stored: StoredMeta = serde_json::from_slice(raw.get(4..4 + len)?).ok()?;
    let raw = Bytes::from(raw);
    let value = raw.slice(4 + len..);
    if value.len() as u64 != stored.size {
        return None;
    }
    let meta = ObjectMeta {
        key: Key::new(stored.key).ok()?,
        size: stored.size,
        modified: UNIX_EPOCH + Duration::from_nanos(stored.modified_ns),
        version: stored.version,
        metadata: stored.metadata,
    };
    Some(CachedValue::new(value, meta))
}

#[async_trait]
impl CacheTier for RedisCacheTier {
    fn name(&self) -> &str {
        "redis"
    }

    async fn get(&self, key: &Key) -> Result<Option<CachedValue>> {
        let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(self.redis_key(key)).clone()).await?;
        // An entry that does not decode (written by another version) is a miss.
        Ok(raw.and_then(decode).filter(|v| v.meta.key == *key))
    }

    async fn put(&self, key: &Key, value: CachedValue) -> Result<()> {
        if value.value.len() as u64 > self.options.max_entry_bytes {
            return self.invalidate(key).await;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(key)).arg(encode(&value));
        if let Some(ttl) = self.options.ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.run::<()>(cmd).await
    }

    async fn invalidate(&self, key: &Key) -> Result<()> {
        self.run::<()>(redis::cmd("DEL").arg(self.redis_key(key)).clone()).await
    }

    /// Removes every entry under the key prefix. On a cluster, each
    /// primary is scanned in turn, and the keys found are removed one by one
    /// (keys of different slots cannot go in one command).
    async fn clear(&self) -> Result<()> {
        if !self.options.cluster {
            return self.clear_on(None).await;
        }
        let nodes: String = self.run(redis::cmd("CLUSTER").arg("NODES").clone()).await?;
        let primaries = primaries(&nodes);
        if primaries.is_empty() {
            return Err(self.unavailable(format!("the cluster names no primary serving slots: {nodes}")));
        }
        for node in &primaries {
            self.clear_on(Some(node)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_come_from_cluster_nodes() {
        let nodes = "07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                     67ed 127.0.0.1:30002@40002 master - 0 1 2 connected 5461-10922\n\
                     292f 127.0.0.1:30003@40003 master,fail - 0 1 3 connected\n\
                     e7d1 127.0.0.1:30004@40004 slave 07c3 0 1 1 connected\n";
        let found: Vec<(String, u16)> = primaries(nodes).into_iter().map(|n| (n.host, n.port)).collect();
        assert_eq!(found, [("127.0.0.1".to_owned(), 30001), ("127.0.0.1".to_owned(), 30002)]);
    }

    #[test]
    fn entries_round_trip() {
        let mut metadata = Metadata::new();
        metadata.insert("posix.mode".into(), "100644".into());
        let meta = ObjectMeta {
            key: Key::new("a/b").unwrap(),
            size: 5,
            modified: UNIX_EPOCH + Duration::from_nanos(1_234_567_890),
            version: "7".into(),
            metadata,
        };
        let value = CachedValue::new(Bytes::from_static(b"hello"), meta.clone());
        let back = decode(encode(&value)).unwrap();
        assert_eq!(back.value, value.value);
        assert_eq!(*back.meta, meta);
        assert!(decode(vec![1, 2]).is_none());
    }

    #[test]
    fn bad_urls_are_refused() {
        let options = RedisTierOptions {
            urls: vec!["http://nope".into()],
            cluster: false,
            key_prefix: "t:".into(),
            ttl: None,
            max_entry_bytes: 1 << 20,
            timeout: Duration::from_millis(100),
        };
        let e = RedisCacheTier::new(options).unwrap_err();
        assert!(e.to_string().contains("cache.redis_url"), "{e}");
    }
}
