//! The messages between Rust and the JavaScript dispatcher that
//! `registerBackend` (in `index.js`) builds around a user's backend object.
//!
//! Rust sends one [`BackendRequest`] per call through a thread-safe
//! function; the dispatcher calls the user's method, normalises what it
//! returns, and resolves with one [`BackendResponse`]. It never rejects: an
//! error thrown by the user's code comes back as `response.error`, with the
//! thrown `err.code` (`ENOENT`, `EACCES`, `EINVAL`, `EEXIST`, `ENOTSUP`; any
//! other reads as `EIO`).
//!
//! | `op` | request fields | response fields |
//! |---|---|---|
//! | `create` | `name`, `settings` | `instance`, `capabilities` |
//! | `get` | `key` | `data` |
//! | `getRange` | `key`, `start`, `end` | `data` |
//! | `put` | `key`, `data`, `metadata`, `ifNotExists` | `stat` (optional) |
//! | `delete` | `key` | |
//! | `stat` | `key` | `stat` |
//! | `list` | `prefix`, `startAfter`, `inclusive`, `limit` | `entries`: at most `limit`, in byte order |
//! | `batch` | `ops` | |
//! | `release` | | (the instance is forgotten) |

use std::collections::HashMap;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use serde_json::Value;

/// One call into a JavaScript backend.
#[napi(object)]
pub struct BackendRequest {
    /// The operation (see the module table).
    pub op: String,
    /// Which backend instance (from `create`); 0 for `create`.
    pub instance: u32,
    /// `create`: the backend's configured name.
    pub name: Option<String>,
    /// `create`: the backend's settings table, without `type`.
    pub settings: Option<Value>,
    /// The key.
    pub key: Option<String>,
    /// `put`: the value.
    pub data: Option<Buffer>,
    /// `put`: the metadata map.
    pub metadata: Option<HashMap<String, String>>,
    /// `put`: fail with `EEXIST` if the key exists.
    pub if_not_exists: Option<bool>,
    /// `getRange`: first byte.
    pub start: Option<f64>,
    /// `getRange`: end of the range (exclusive).
    pub end: Option<f64>,
    /// `list`: keys starting with this.
    pub prefix: Option<String>,
    /// `list`: only keys after this one.
    pub start_after: Option<String>,
    /// `list`: `startAfter` itself is included.
    pub inclusive: Option<bool>,
    /// `list`: at most this many entries.
    pub limit: Option<u32>,
    /// `batch`: the operations.
    pub ops: Option<Vec<BackendBatchOp>>,
}

impl BackendRequest {
    /// A request of `op` on `instance` with every other field empty.
    pub fn new(op: &str, instance: u32) -> Self {
        BackendRequest {
            op: op.to_owned(),
            instance,
            name: None,
            settings: None,
            key: None,
            data: None,
            metadata: None,
            if_not_exists: None,
            start: None,
            end: None,
            prefix: None,
            start_after: None,
            inclusive: None,
            limit: None,
            ops: None,
        }
    }

    /// The same request about `key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
}

/// One operation of a `batch` request.
#[napi(object)]
pub struct BackendBatchOp {
    /// `put` or `delete`.
    pub op: String,
    /// The key.
    pub key: String,
    /// `put`: the value.
    pub data: Option<Buffer>,
    /// `put`: the metadata map.
    pub metadata: Option<HashMap<String, String>>,
    /// `put`: fail the batch with `EEXIST` if the key exists.
    pub if_not_exists: Option<bool>,
}

/// What the dispatcher answers.
#[napi(object)]
pub struct BackendResponse {
    /// Set when the user's method threw or returned something unusable.
    pub error: Option<BackendError>,
    /// `create`: the new instance's number.
    pub instance: Option<u32>,
    /// `create`: what the instance can do.
    pub capabilities: Option<BackendCapabilities>,
    /// `get`, `getRange`: the bytes.
    pub data: Option<Buffer>,
    /// `stat`, and `put` when the method returned one.
    pub stat: Option<BackendStat>,
    /// `list`: the entries.
    pub entries: Option<Vec<BackendStat>>,
}

/// An error from the user's code.
#[napi(object)]
pub struct BackendError {
    /// `err.code`, when it had one.
    pub code: Option<String>,
    /// `err.message`.
    pub message: String,
}

/// What an instance can do, from the methods it has and what it declares.
#[napi(object)]
pub struct BackendCapabilities {
    /// It has `batch`, which applies all operations or none.
    pub atomic_batch: bool,
    /// It has `getRange`.
    pub range_read: bool,
    /// It declares `persistent: true`.
    pub persistent: bool,
    /// It declares `shared: true` (other hosts see its values).
    pub shared: bool,
    /// It declares `conditionalPut: true` (honours `ifNotExists` atomically).
    pub conditional_put: bool,
}

/// A stored value's facts, as the user's `stat` or `list` gave them.
#[napi(object)]
pub struct BackendStat {
    /// The key (`list` entries).
    pub key: Option<String>,
    /// Size in bytes.
    pub size: f64,
    /// Modification time, in milliseconds since the epoch.
    pub modified_ms: Option<f64>,
    /// The version, if the backend keeps one.
    pub version: Option<String>,
    /// The metadata map.
    pub metadata: Option<HashMap<String, String>>,
}
