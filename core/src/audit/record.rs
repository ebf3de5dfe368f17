use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the access check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// The operation was allowed and went ahead.
    Allowed,
    /// The operation was refused before any backend was touched.
    Denied,
}

/// One line of the audit log: who tried what on which keys, and the
/// decision. Values never appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, continuous across rotated files.
    pub seq: u64,
    /// When, in RFC 3339 (UTC, nanoseconds).
    pub time: String,
    /// The principal's id.
    pub principal: String,
    /// The operation (`read`, `write`, `delete`, `list`, `batch`,
    /// `rename`, or `admin:<command>`).
    pub operation: String,
    /// The keys (or prefix, or resource) involved.
    pub keys: Vec<String>,
    /// The decision.
    pub result: AuditResult,
    /// The deciding rule, the reason for a denial, or an admin command's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Hash of the previous record (hex SHA-256; 64 zeros for the first).
    pub prev: String,
    /// Hash of this record: SHA-256 of `prev`, a newline, and the record's
    /// JSON with `hash` empty.
    pub hash: String,
}

/// The `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// When the record was made.
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }

    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        let unhashed = AuditRecord { hash: String::new(), ..self.clone() };
        let json = serde_json::to_vec(&unhashed).expect("records serialize");
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(&json);
        hex::encode(h.finalize())
    }
}

/// Formats a time as the log writes it.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}
