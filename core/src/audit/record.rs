//! One record of the audit log, and the exact bytes of its line.
//!
//! A line is the record's JSON with `hash` last:
//!
//! ```text
//! {"seq":42,"time":"…","principal":"bob",…,"prev":"9f2c…","hash":"c41a…"}
//! ```
//!
//! `hash` seals the exact bytes before `,"hash":"` (see [`super::chain`]),
//! so any change to a line, even of whitespace or field order, breaks it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain: 0 for the genesis record, then continuous
    /// across rotated files.
    pub seq: u64,
    /// When, in RFC 3339 (UTC, nanoseconds).
    pub time: String,
    /// The principal's id (`tierfs` for the log's own records).
    pub principal: String,
    /// The operation (`read`, `write`, `delete`, `list`, `batch`,
    /// `rename`, `check`, `admin:<command>`), or one of the log's own:
    /// `audit:genesis` (first record of a log), `audit:rotate` (first
    /// record of each newer file), `audit:gap` (records found missing
    /// when the log was reopened).
    pub operation: String,
    /// The keys (or prefix, or resource) involved.
    pub keys: Vec<String>,
    /// The decision.
    pub result: AuditResult,
    /// The deciding rule, the reason for a denial, or an admin command's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The log's id, on the log's own `audit:genesis` and `audit:rotate` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The `hash` of the previous record (64 zeros before the genesis record).
    pub prev: String,
    /// The keyed seal of this line: HMAC-SHA-256, under the log's key, of
    /// the line's bytes up to `,"hash":"`.
    pub hash: String,
}

/// The `prev` of the genesis record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What comes between a line's sealed bytes and its hash.
pub(super) const HASH_FIELD: &str = ",\"hash\":\"";

impl AuditRecord {
    /// When the record was made.
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }

    /// Whether this is one of the log's own records (`audit:*`).
    pub fn is_log_record(&self) -> bool {
        self.operation.starts_with("audit:")
    }

    /// The bytes the hash seals: the JSON of every field but `hash`,
    /// without its closing brace.
    pub(super) fn sealed_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Unsealed<'a> {
            seq: u64,
            time: &'a str,
            principal: &'a str,
            operation: &'a str,
            keys: &'a [String],
            result: AuditResult,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            log: Option<&'a str>,
            prev: &'a str,
        }
        let unsealed = Unsealed {
            seq: self.seq,
            time: &self.time,
            principal: &self.principal,
            operation: &self.operation,
            keys: &self.keys,
            result: self.result,
            detail: self.detail.as_deref(),
            log: self.log.as_deref(),
            prev: &self.prev,
        };
        let mut json = serde_json::to_vec(&unsealed).expect("records serialize");
        json.pop(); // the closing brace
        json
    }

    /// The whole line, newline included, for sealed bytes and their hash.
    pub(super) fn line(sealed: &[u8], hash: &str) -> Vec<u8> {
        let mut line = Vec::with_capacity(sealed.len() + HASH_FIELD.len() + hash.len() + 3);
        line.extend_from_slice(sealed);
        line.extend_from_slice(HASH_FIELD.as_bytes());
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        line
    }
}

/// A line split into the bytes its hash seals and the hash, if it has the
/// shape TierFS writes (`…,"hash":"<64 hex digits>"}` and nothing after).
pub(super) fn split_line(line: &[u8]) -> Option<(&[u8], &str)> {
    let body = line.strip_suffix(b"\"}")?;
    let at = body.windows(HASH_FIELD.len()).rposition(|w| w == HASH_FIELD.as_bytes())?;
    let hash = std::str::from_utf8(&body[at + HASH_FIELD.len()..]).ok()?;
    let well_formed =
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((&body[..at], hash))
}

/// Formats a time as the log writes it.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 3,
            time: format_time(SystemTime::UNIX_EPOCH),
            principal: "bob".into(),
            operation: "read".into(),
            keys: vec!["a,\"hash\":\"b".into()],
            result: AuditResult::Denied,
            detail: None,
            log: None,
            prev: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_line_splits_back_into_its_parts() {
        let r = record();
        let sealed = r.sealed_bytes();
        let hash = "ab".repeat(32);
        let line = AuditRecord::line(&sealed, &hash);
        let (s, h) = split_line(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(s, &sealed[..]);
        assert_eq!(h, hash);
        let parsed: AuditRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, AuditRecord { hash, ..r });
    }

    #[test]
    fn other_shapes_do_not_split() {
        let sealed = record().sealed_bytes();
        let line = AuditRecord::line(&sealed, &"ab".repeat(32));
        let line = line.strip_suffix(b"\n").unwrap();
        let mut trailing = line.to_vec();
        trailing.push(b' ');
        assert!(split_line(&trailing).is_none());
        let upper = String::from_utf8(line.to_vec()).unwrap().replace(&"ab".repeat(32), &"AB".repeat(32));
        assert!(split_line(upper.as_bytes()).is_none());
        assert!(split_line(b"{}").is_none());
    }
}
