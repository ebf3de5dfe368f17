//! Values crossing the boundary: buffers, stat results, listings, batches,
//! configuration tables, access rules, audit records and metrics.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi::Env;
use napi_derive::napi;
use serde_json::{json, Map, Value};
use tierfs_core::access::AccessPolicy;
use tierfs_core::audit::{AuditQuery, AuditRecord, AuditResult};
use tierfs_core::metrics::MetricsSnapshot;
use tierfs_core::{BatchOp, ClassInfo, Key, ListEntry, ListPage, Metadata, ObjectMeta, Result};

use crate::error::invalid;

/// Values up to this size are copied on the JavaScript thread; larger ones
/// are copied (or handed over) off it.
pub const INLINE_COPY: usize = 256 * 1024;

/// Values from this size on are handed to JavaScript without a copy when
/// no one else holds them.
const ZERO_COPY_MIN: usize = 64 * 1024;

/// A core value as a JavaScript `Buffer` the caller owns: copied, or handed
/// over when the bytes are not shared (a shared buffer, such as a value the
/// memory backend stores, is always copied so that JavaScript cannot change
/// the stored value through it).
///
/// A handed-over buffer is reported to V8 as external memory while it
/// lives, so that garbage collection keeps up with a fast stream of large
/// chunks instead of letting them pile up.
pub fn bytes_to_js(env: &Env, bytes: Bytes) -> napi::Result<BufferSlice<'_>> {
    if bytes.len() >= ZERO_COPY_MIN {
        return match bytes.try_into_mut() {
            Ok(mut unique) => {
                let len = unique.len();
                let data = unique.as_mut_ptr();
                // SAFETY: `data` points at `len` bytes owned by `unique`, which
                // the finalizer keeps alive until the Buffer is collected; nothing
                // else holds them (`try_into_mut` succeeded).
                let slice = unsafe {
                    BufferSlice::from_external(env, data, len, unique, move |env: Env, owner: BytesMut| {
                        let _ = env.adjust_external_memory(-(len as i64));
                        drop(owner);
                    })?
                };
                env.adjust_external_memory(len as i64)?;
                Ok(slice)
            }
            Err(shared) => BufferSlice::copy_from(env, &shared),
        };
    }
    BufferSlice::copy_from(env, &bytes)
}

/// A core value as a JavaScript `Buffer` value (for `promise` conversions).
pub fn buffer(env: &Env, bytes: Bytes) -> napi::Result<napi::sys::napi_value> {
    crate::task::plain(env, bytes_to_js(env, bytes)?)
}

/// A core stat as a JavaScript object (for `promise` conversions).
pub fn stat(env: &Env, meta: ObjectMeta) -> napi::Result<napi::sys::napi_value> {
    crate::task::plain(env, NativeStat::from(meta))
}

/// A `stat` with the key's class, converted on the JavaScript thread.
pub fn stat_with_class(env: &Env, found: (ObjectMeta, ClassInfo)) -> napi::Result<napi::sys::napi_value> {
    crate::task::plain(env, NativeStat::from(found))
}

/// Bytes the store keeps, from a JavaScript buffer: copied now when small,
/// otherwise by [`Pending::into_bytes`] off the JavaScript thread. The value
/// is always copied, so the caller may reuse its buffer once the call settles.
pub enum Pending {
    /// Already copied.
    Ready(Bytes),
    /// A reference to the caller's buffer, copied later.
    Buffer(Buffer),
}

impl Pending {
    /// Takes `buffer`, copying it right away when it is small.
    pub fn new(buffer: Buffer) -> Self {
        if buffer.len() <= INLINE_COPY {
            Pending::Ready(Bytes::copy_from_slice(&buffer))
        } else {
            Pending::Buffer(buffer)
        }
    }

    /// The bytes, copying now if not done yet.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Pending::Ready(b) => b,
            Pending::Buffer(b) => Bytes::copy_from_slice(&b),
        }
    }
}

/// What `stat` returns (the JavaScript wrapper turns `modifiedMs` into a `Date`).
#[napi(object)]
pub struct NativeStat {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: f64,
    /// Modification time, in milliseconds since the epoch.
    pub modified_ms: f64,
    /// Changes whenever the value changes.
    pub version: String,
    /// The metadata map stored with the value.
    pub metadata: HashMap<String, String>,
    /// The key's storage class (`stat` only; absent when it has none).
    pub storage_class: Option<String>,
    /// The backends that hold the key (`stat` only).
    pub backends: Option<Vec<String>>,
}

/// Milliseconds since the epoch.
pub fn millis(t: SystemTime) -> f64 {
    let ms = |d: Duration| d.as_millis() as f64 + f64::from(d.subsec_nanos() % 1_000_000) / 1e6;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ms(d),
        Err(before) => -ms(before.duration()),
    }
}

/// A time from milliseconds since the epoch.
pub fn from_millis(ms: f64) -> Result<SystemTime> {
    if !ms.is_finite() {
        return Err(invalid(format!("{ms} is not a time; give a Date or milliseconds since 1970")));
    }
    let abs = ms.abs();
    let whole = abs.trunc();
    if whole >= u64::MAX as f64 {
        return Err(invalid(format!("{ms} ms is out of range for a time")));
    }
    // Whole milliseconds exactly, then the fraction, so round numbers stay exact.
    let d = Duration::from_millis(whole as u64) + Duration::from_nanos(((abs - whole) * 1e6).round() as u64);
    let t = if ms >= 0.0 { UNIX_EPOCH.checked_add(d) } else { UNIX_EPOCH.checked_sub(d) };
    t.ok_or_else(|| invalid(format!("{ms} ms is out of range for a time")))
}

impl From<ObjectMeta> for NativeStat {
    fn from(meta: ObjectMeta) -> Self {
        NativeStat {
            key: meta.key.into_string(),
            size: meta.size as f64,
            modified_ms: millis(meta.modified),
            version: meta.version,
            metadata: meta.metadata.into_iter().collect(),
            storage_class: None,
            backends: None,
        }
    }
}

impl From<(ObjectMeta, ClassInfo)> for NativeStat {
    /// What `stat` reports: the value's stat with its class and backends.
    fn from((meta, class): (ObjectMeta, ClassInfo)) -> Self {
        NativeStat { storage_class: class.class, backends: Some(class.backends), ..meta.into() }
    }
}

/// A key's storage class, as `storageClass` reports it (the JavaScript
/// wrapper turns absent fields into `null`).
#[napi(object)]
pub struct NativeClassInfo {
    /// The class; absent when neither the key nor a prefix above it has one.
    pub storage_class: Option<String>,
    /// The prefix the class is inherited from; absent when the key was given it.
    pub inherited_from: Option<String>,
    /// The backends of the stack that holds the key.
    pub backends: Vec<String>,
    /// Whether its data is still moving to them.
    pub moving: bool,
}

impl From<ClassInfo> for NativeClassInfo {
    fn from(info: ClassInfo) -> Self {
        NativeClassInfo {
            storage_class: info.class,
            inherited_from: info.inherited_from,
            backends: info.backends,
            moving: info.moving,
        }
    }
}

/// One listing entry: a stored value (`stat` set) or a group of deeper keys
/// (`prefix` true, the key ending in `/`).
#[napi(object)]
pub struct NativeListEntry {
    /// The key, or the prefix with its trailing `/`.
    pub key: String,
    /// Whether this entry groups deeper keys.
    pub prefix: bool,
    /// Size, time, version and metadata of a stored value.
    pub stat: Option<NativeStat>,
}

/// One page of a listing.
#[napi(object)]
pub struct NativeListPage {
    /// Entries in byte order of their keys.
    pub entries: Vec<NativeListEntry>,
    /// Where the next page starts; absent at the end.
    pub next: Option<String>,
}

impl From<ListPage> for NativeListPage {
    fn from(page: ListPage) -> Self {
        NativeListPage {
            entries: page
                .entries
                .into_iter()
                .map(|e| match e {
                    ListEntry::Object(meta) => NativeListEntry {
                        key: meta.key.as_str().to_owned(),
                        prefix: false,
                        stat: Some(meta.into()),
                    },
                    ListEntry::Prefix(p) => NativeListEntry { key: p, prefix: true, stat: None },
                })
                .collect(),
            next: page.next,
        }
    }
}

/// One operation of a batch, as the JavaScript wrapper passes it.
#[napi(object)]
pub struct NativeBatchOp {
    /// `put` or `delete`.
    pub op: String,
    /// The key.
    pub key: String,
    /// The value of a `put`.
    pub data: Option<Buffer>,
    /// The metadata of a `put`.
    pub metadata: Option<HashMap<String, String>>,
    /// Fail the whole batch with `EEXIST` if the key of this `put` exists.
    pub if_not_exists: Option<bool>,
}

/// A batch operation not yet validated, with its value not yet copied.
pub struct PendingOp {
    op: String,
    key: String,
    data: Option<Pending>,
    metadata: Option<HashMap<String, String>>,
    if_not_exists: bool,
}

impl From<NativeBatchOp> for PendingOp {
    fn from(op: NativeBatchOp) -> Self {
        PendingOp {
            op: op.op,
            key: op.key,
            data: op.data.map(Pending::new),
            metadata: op.metadata,
            if_not_exists: op.if_not_exists.unwrap_or(false),
        }
    }
}

impl PendingOp {
    /// The core operation; `index` names it in errors.
    pub fn into_core(self, index: usize) -> Result<BatchOp> {
        let key = Key::new(self.key).map_err(|e| e.with_operation("batch"))?;
        match self.op.as_str() {
            "put" => {
                let data = self
                    .data
                    .ok_or_else(|| invalid(format!("batch operation {index} is a put without `data`")))?;
                Ok(BatchOp::Put {
                    key,
                    value: data.into_bytes(),
                    metadata: metadata(self.metadata),
                    if_not_exists: self.if_not_exists,
                })
            }
            "delete" => Ok(BatchOp::Delete { key }),
            other => Err(invalid(format!("batch operation {index} has op `{other}`; use `put` or `delete`"))),
        }
    }
}

/// A metadata map from JavaScript.
pub fn metadata(map: Option<HashMap<String, String>>) -> Metadata {
    map.map(|m| m.into_iter().collect()).unwrap_or_default()
}

/// A JSON value (from a JavaScript object) as TOML, for configuration
/// tables; `null` and `undefined` fields are left out.
pub fn json_to_toml(value: &Value, field: &str) -> Result<Option<toml::Value>> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) => toml::Value::Float(f),
            (None, None) => return Err(invalid(format!("`{field}`: {n} is out of range"))),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| json_to_toml(v, &format!("{field}[{i}]")).transpose())
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => toml::Value::Table(json_to_table(map, field)?),
    }))
}

/// A JSON object as a TOML table.
pub fn json_to_table(map: &Map<String, Value>, field: &str) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    for (k, v) in map {
        let path = if field.is_empty() { k.clone() } else { format!("{field}.{k}") };
        if let Some(v) = json_to_toml(v, &path)? {
            table.insert(k.clone(), v);
        }
    }
    Ok(table)
}

/// A TOML table as JSON (settings handed to a JavaScript backend factory).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// The access policy as `{ default, rules: [{ principal, resource, operation, level, addedBy?, authority? }] }`.
pub fn policy_to_json(policy: &AccessPolicy) -> Value {
    let config = policy.to_config();
    json!({
        "default": config.default.as_str(),
        "rules": config.rules.iter().map(|r| {
            let mut rule = json!({
                "principal": r.principal,
                "resource": r.resource,
                "operation": r.operation,
                "level": r.level.as_str(),
            });
            if let (Some(by), Some(authority)) = (&r.added_by, &r.authority) {
                rule["addedBy"] = json!(by);
                rule["authority"] = json!(authority);
            }
            rule
        }).collect::<Vec<_>>(),
    })
}

/// An audit query from JavaScript.
#[napi(object)]
pub struct NativeAuditQuery {
    /// Only this principal.
    pub principal: Option<String>,
    /// Only at or after this time (milliseconds since the epoch).
    pub since_ms: Option<f64>,
    /// Only before this time (milliseconds since the epoch).
    pub until_ms: Option<f64>,
    /// Only records naming a key that starts with this.
    pub key_prefix: Option<String>,
    /// `allowed` or `denied`.
    pub result: Option<String>,
    /// At most this many records, the most recent.
    pub limit: Option<u32>,
}

impl NativeAuditQuery {
    /// The core query.
    pub fn into_core(self) -> Result<AuditQuery> {
        let result = match self.result.as_deref() {
            None => None,
            Some("allowed") => Some(AuditResult::Allowed),
            Some("denied") => Some(AuditResult::Denied),
            Some(other) => return Err(invalid(format!("audit result `{other}`; use `allowed` or `denied`"))),
        };
        Ok(AuditQuery {
            principal: self.principal,
            since: self.since_ms.map(from_millis).transpose()?,
            until: self.until_ms.map(from_millis).transpose()?,
            key_prefix: self.key_prefix,
            result,
            limit: self.limit.map(|l| l as usize),
        })
    }
}

/// Audit records as JSON objects (`seq`, `time`, `principal`, `operation`,
/// `keys`, `result`, `detail`, `prev`, `hash`).
pub fn audit_to_json(records: Vec<AuditRecord>) -> Result<Value> {
    serde_json::to_value(records)
        .map_err(|e| tierfs_core::Error::new(tierfs_core::ErrorKind::Unavailable, e.to_string()))
}

/// A metrics snapshot as a plain object.
pub fn metrics_to_json(m: &MetricsSnapshot) -> Value {
    let backends: Map<String, Value> = m
        .backends
        .iter()
        .map(|(name, ops)| {
            let ops: Map<String, Value> = ops
                .iter()
                .map(|(op, s)| {
                    let latency = json!({
                        "count": s.latency.count,
                        "sumUs": s.latency.sum_us,
                        "p50Us": s.latency.quantile_bound_us(0.5),
                        "p99Us": s.latency.quantile_bound_us(0.99),
                        "buckets": s.latency.buckets,
                    });
                    let v = json!({
                        "count": s.count,
                        "errors": s.errors,
                        "bytesIn": s.bytes_in,
                        "bytesOut": s.bytes_out,
                        "latency": latency,
                    });
                    ((*op).to_owned(), v)
                })
                .collect();
            (name.clone(), Value::Object(ops))
        })
        .collect();
    let traffic: Map<String, Value> = m
        .traffic
        .iter()
        .map(|(name, t)| (name.clone(), json!({ "sent": t.sent, "received": t.received })))
        .collect();
    json!({
        "backends": backends,
        "traffic": traffic,
        "cacheHits": m.cache_hits,
        "cacheMisses": m.cache_misses,
        "cacheEvictions": m.cache_evictions,
        "repairs": m.repairs,
        "migrations": m.migrations,
        "retries": m.retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_become_toml_tables() {
        let v = json!({ "type": "local", "path": "data", "cache_mib": 8, "ratio": 0.5, "skip": null,
                        "list": [1, "a"], "nested": { "on": true } });
        let Value::Object(map) = v else { unreachable!() };
        let t = json_to_table(&map, "").unwrap();
        assert_eq!(t["cache_mib"].as_integer(), Some(8));
        assert_eq!(t["ratio"].as_float(), Some(0.5));
        assert!(!t.contains_key("skip"));
        assert_eq!(t["nested"]["on"].as_bool(), Some(true));
        assert_eq!(toml_to_json(&toml::Value::Table(t.clone()))["path"], "data");
    }

    #[test]
    fn times_round_trip_through_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_millis(millis(t)).unwrap(), t);
        assert!(from_millis(f64::NAN).is_err());
    }

    #[test]
    fn batch_ops_are_checked() {
        let op = PendingOp {
            op: "rename".into(),
            key: "a".into(),
            data: None,
            metadata: None,
            if_not_exists: false,
        };
        assert!(op.into_core(0).unwrap_err().to_string().contains("use `put` or `delete`"));
        let op =
            PendingOp { op: "put".into(), key: "a".into(), data: None, metadata: None, if_not_exists: false };
        assert!(op.into_core(3).unwrap_err().to_string().contains("operation 3 is a put without"));
        let op = PendingOp {
            op: "delete".into(),
            key: "a//b".into(),
            data: None,
            metadata: None,
            if_not_exists: false,
        };
        assert_eq!(op.into_core(0).unwrap_err().kind(), tierfs_core::ErrorKind::InvalidKey);
    }
}
