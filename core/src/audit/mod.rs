//! The audit log: one JSON record a line in an append-only file, sealed
//! with a keyed hash chain, so that [`verify`] finds an edited, removed,
//! inserted or reordered line, and a log cut short.
//!
//! Every access attempt (allowed or denied), every policy change and every
//! admin command is one [`AuditRecord`], with keys but never values. When a
//! record cannot be written the operation fails (`on_failure = "closed"`,
//! the default) unless the configuration says `"open"`.
//!
//! How the log is sealed:
//! - each line's `hash` is HMAC-SHA-256, under the log's secret key
//!   ([`chain`]), of the line's exact bytes before it, which include the
//!   previous line's hash (`prev`): without the key, nobody can write a
//!   line that verifies;
//! - the first record of a log is its genesis record (`seq` 0, with the
//!   log's id), and the first of every newer file after a rotation links
//!   to the last of the file before;
//! - after every write of records, at rotation, at close and at least once
//!   a second, the last record's position and hash are sealed into a
//!   separate file ([`seal`]): a log that ends before its seal was cut.
//!
//! ```
//! use tierfs_core::audit::{verify, AuditConfig, AuditLog, AuditQuery, AuditResult};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AuditConfig { path: dir.path().join("audit.log"), ..Default::default() };
//! let log = AuditLog::open(&config).unwrap();
//! log.append("alice", "write", &["notes/a.txt"], AuditResult::Allowed, None).unwrap();
//! log.append("bob", "read", &["notes/a.txt"], AuditResult::Denied, Some("no rule grants read")).unwrap();
//!
//! let denied = log.query(&AuditQuery { result: Some(AuditResult::Denied), ..Default::default() }).unwrap();
//! assert_eq!(denied.len(), 1);
//! assert_eq!(denied[0].principal, "bob");
//! drop(log);
//! let report = verify(&config).unwrap();
//! assert!(report.is_intact());
//! assert_eq!(report.records, 2);
//! ```

pub mod chain;
mod files;
mod record;
pub mod seal;
mod verify;
mod writer;

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;

pub use record::{format_time, AuditRecord, AuditResult, GENESIS};
pub use verify::{verify, ChainBreak, Tampering, VerifyReport};
pub use writer::AuditLog;

/// What to do when a record cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Refuse the operation (default).
    #[default]
    Closed,
    /// Let the operation go ahead, logging the failure.
    Open,
}

/// When records reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// One `write` per record, before the operation runs (default): a
    /// failure to write refuses that very operation.
    #[default]
    Record,
    /// Records are gathered in a 64 KiB buffer and written together (and
    /// at least once a second); a write failure refuses the operations
    /// that follow it. Faster.
    Batch,
}

/// `[audit]` in the configuration file.
///
/// ```toml
/// [audit]
/// path = "audit/audit.log"   # relative to the configuration file
/// max_file_mib = 64          # rotate past this size
/// max_files = 10             # rotated files kept
/// on_failure = "closed"      # or "open"
/// flush = "record"           # or "batch"
/// fsync = false              # fsync each write (slow, survives power loss)
/// key_file = "/etc/tierfs/audit.key"   # default: the log's path + ".key", created if missing
/// seal_file = "/var/lib/tierfs/audit.seal"  # default: the log's path + ".seal"
/// group = "adm"              # optional: this group may read the log (0640)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The log file.
    pub path: PathBuf,
    /// Rotate when the file passes this many MiB.
    pub max_file_mib: u64,
    /// Rotated files kept.
    pub max_files: usize,
    /// What to do when a record cannot be written.
    pub on_failure: OnFailure,
    /// When records reach the file.
    pub flush: FlushMode,
    /// Whether to fsync after each write.
    pub fsync: bool,
    /// The file holding the chain's secret key (default: `path` + `.key`).
    pub key_file: Option<PathBuf>,
    /// The file holding the seal (default: `path` + `.seal`).
    pub seal_file: Option<PathBuf>,
    /// A group allowed to read the log files (mode `0640`); by default
    /// only the daemon's user may.
    pub group: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("audit.log"),
            max_file_mib: 64,
            max_files: 10,
            on_failure: OnFailure::Closed,
            flush: FlushMode::Record,
            fsync: false,
            key_file: None,
            seal_file: None,
            group: None,
        }
    }
}

impl AuditConfig {
    /// The key file in force.
    pub fn key_path(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| files::with_suffix(&self.path, ".key"))
    }

    /// The seal file in force.
    pub fn seal_path(&self) -> PathBuf {
        self.seal_file.clone().unwrap_or_else(|| files::with_suffix(&self.path, ".seal"))
    }
}

/// A filter for [`AuditLog::query`]; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this principal.
    pub principal: Option<String>,
    /// Only at or after this time.
    pub since: Option<SystemTime>,
    /// Only before this time.
    pub until: Option<SystemTime>,
    /// Only records naming a key that starts with this.
    pub key_prefix: Option<String>,
    /// Only this decision.
    pub result: Option<AuditResult>,
    /// At most this many records, the most recent (default 1000).
    pub limit: Option<usize>,
}

impl AuditQuery {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == r.principal)
            && self.result.is_none_or(|x| x == r.result)
            && self.key_prefix.as_ref().is_none_or(|p| r.keys.iter().any(|k| k.starts_with(p.as_str())))
            && (self.since.is_none() && self.until.is_none() || {
                let t = r.timestamp();
                self.since.is_none_or(|s| t.is_some_and(|t| t >= s))
                    && self.until.is_none_or(|u| t.is_some_and(|t| t < u))
            })
    }
}
