//! The audit log: one JSON record a line in an append-only file, each
//! carrying the hash of the one before, so that [`verify`] finds an edited,
//! removed or reordered line.
//!
//! Every access attempt (allowed or denied), every policy change and every
//! admin command is one [`AuditRecord`], with keys but never values. When a
//! record cannot be written the operation fails (`on_failure = "closed"`,
//! the default) unless the configuration says `"open"`.
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
//! assert!(verify(&config.path).unwrap().is_intact());
//! ```

mod files;
mod record;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Deserialize;

pub use record::{format_time, AuditRecord, AuditResult, GENESIS};
pub use verify::{verify, ChainBreak, VerifyReport};

use crate::error::{Error, ErrorKind, Result};

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
    /// Records are gathered in a 64 KiB buffer and written together; a
    /// write failure refuses the operations that follow it. Faster.
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
        }
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

#[derive(Debug)]
struct Writer {
    file: File,
    buffer: Vec<u8>,
    size: u64,
    seq: u64,
    prev: String,
    failed: Option<String>,
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    config: AuditConfig,
    writer: Mutex<Writer>,
}

const BATCH_BYTES: usize = 64 * 1024;

impl AuditLog {
    /// Opens (or creates) the log, continuing the chain where it ended.
    pub fn open(config: &AuditConfig) -> Result<AuditLog> {
        let path = &config.path;
        let io =
            |e| Error::io(format!("cannot open the audit log {}; check `[audit] path`", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let (seq, prev) = last_record(path)?.map_or((0, GENESIS.to_owned()), |r| (r.seq, r.hash));
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(AuditLog {
            config: config.clone(),
            writer: Mutex::new(Writer { file, buffer: Vec::new(), size, seq, prev, failed: None }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.config
    }

    /// Appends one record. An error means the record is not in the log;
    /// with `on_failure = "closed"` the caller must refuse the operation.
    pub fn append(
        &self,
        principal: &str,
        operation: &str,
        keys: &[&str],
        result: AuditResult,
        detail: Option<&str>,
    ) -> Result<()> {
        let mut w = self.writer.lock();
        if let Some(why) = &w.failed {
            return Err(self.unwritable(why.clone()));
        }
        let mut record = AuditRecord {
            seq: w.seq + 1,
            time: format_time(SystemTime::now()),
            principal: principal.to_owned(),
            operation: operation.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            result,
            detail: detail.map(str::to_owned),
            prev: w.prev.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let mut line = serde_json::to_vec(&record).expect("records serialize");
        line.push(b'\n');
        if w.size + (w.buffer.len() + line.len()) as u64 > self.config.max_file_mib << 20 {
            self.flush_locked(&mut w)?;
            self.rotate_locked(&mut w)?;
        }
        w.buffer.extend_from_slice(&line);
        if self.config.flush == FlushMode::Record || w.buffer.len() >= BATCH_BYTES {
            self.flush_locked(&mut w)?;
        }
        w.seq = record.seq;
        w.prev = record.hash;
        Ok(())
    }

    fn unwritable(&self, why: String) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the audit log {} cannot be written ({why}); operations are refused until it can (set `[audit] on_failure = \"open\"` to allow them)",
                self.config.path.display()
            ),
        )
    }

    fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        if w.buffer.is_empty() {
            return Ok(());
        }
        let written =
            w.file
                .write_all(&w.buffer)
                .and_then(|_| if self.config.fsync { w.file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                w.size += w.buffer.len() as u64;
                w.buffer.clear();
                Ok(())
            }
            Err(e) => {
                // What reached the file is unknown: stop writing, so the
                // chain is never continued past a hole.
                w.buffer.clear();
                w.failed = Some(e.to_string());
                Err(self.unwritable(e.to_string()))
            }
        }
    }

    fn rotate_locked(&self, w: &mut Writer) -> Result<()> {
        files::rotate(&self.config.path, self.config.max_files)?;
        w.file = OpenOptions::new().create(true).append(true).open(&self.config.path).map_err(|e| {
            Error::io(format!("cannot create the audit log {}", self.config.path.display()), e)
        })?;
        w.size = 0;
        Ok(())
    }

    /// Writes buffered records (batch mode).
    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.flush_locked(&mut w)?;
        if self.config.fsync {
            w.file.sync_data().map_err(|e| Error::io("cannot fsync the audit log", e))?;
        }
        Ok(())
    }

    /// The records matching `query`, oldest first, at most `limit` (the most recent).
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.flush()?;
        let limit = query.limit.unwrap_or(1000);
        let mut out = std::collections::VecDeque::new();
        for file in files::log_files(&self.config.path)? {
            let reader = BufReader::new(
                File::open(&file).map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?,
            );
            for line in reader.lines() {
                let line = line.map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
                let Ok(record) = serde_json::from_str::<AuditRecord>(&line) else { continue };
                if query.matches(&record) {
                    if out.len() == limit {
                        out.pop_front();
                    }
                    out.push_back(record);
                }
            }
        }
        Ok(out.into())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let mut w = self.writer.lock();
        if let Err(e) = self.flush_locked(&mut w) {
            tracing::error!(error = %e, "audit records lost at close");
        }
    }
}

/// The last record of the log's newest non-empty file, read from the end
/// (only regular files are read; a device such as `/dev/full` has none).
fn last_record(path: &Path) -> Result<Option<AuditRecord>> {
    let Ok(files) = files::log_files(path) else { return Ok(None) };
    for file in files.iter().rev() {
        let io = |e| Error::io(format!("cannot read {}", file.display()), e);
        if !std::fs::metadata(file).map_err(io)?.is_file() {
            continue;
        }
        let Some(line) = last_line(file).map_err(io)? else { continue };
        let record: AuditRecord = serde_json::from_slice(&line).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the last line of the audit log {} is damaged ({e}); run `tierfs audit verify` and repair or move the file",
                    file.display()
                ),
            )
        })?;
        return Ok(Some(record));
    }
    Ok(None)
}

/// The last non-empty line of `file`, reading backwards in growing windows.
fn last_line(file: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(&mut f).take(len - start).read_to_end(&mut buf)?;
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match trimmed.iter().rposition(|b| *b == b'\n') {
            Some(i) => return Ok(Some(trimmed[i + 1..].to_vec())),
            None if start == 0 => return Ok((!trimmed.is_empty()).then(|| trimmed.to_vec())),
            None => window *= 4,
        }
    }
}
