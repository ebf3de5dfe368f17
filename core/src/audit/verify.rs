use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::files::log_files;
use super::record::{AuditRecord, GENESIS};
use crate::error::{Error, Result};

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The file.
    pub file: PathBuf,
    /// Line number in that file, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Records checked before the first break (all of them if none).
    pub records: u64,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
    /// Sequence number the chain starts at (above 1 when the oldest
    /// rotated files were removed).
    pub first_seq: Option<u64>,
}

impl VerifyReport {
    /// Whether the whole chain holds.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Checks the whole chain of the log at `path` and its rotated files:
/// every line parses, each record's hash is right, each `prev` is the hash
/// of the record before, and sequence numbers follow one another. An
/// edited, removed or reordered line breaks the chain at that point.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let files = log_files(path)?;
    let mut report = VerifyReport { files: files.clone(), records: 0, first_break: None, first_seq: None };
    let mut prev: Option<(u64, String)> = None;
    for file in &files {
        let reader = BufReader::new(
            std::fs::File::open(file)
                .map_err(|e| Error::io(format!("cannot read the audit log {}", file.display()), e))?,
        );
        for (i, line) in reader.lines().enumerate() {
            let brk = |reason: String| ChainBreak { file: file.clone(), line: i + 1, reason };
            let line =
                line.map_err(|e| Error::io(format!("cannot read the audit log {}", file.display()), e))?;
            let record: AuditRecord = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => {
                    report.first_break = Some(brk(format!("not a valid record: {e}")));
                    return Ok(report);
                }
            };
            let problem = if record.compute_hash() != record.hash {
                Some("the record's hash does not match its content (edited)".to_owned())
            } else {
                match &prev {
                    None if record.seq == 1 && record.prev != GENESIS => {
                        Some("the first record does not start the chain".to_owned())
                    }
                    None => None,
                    Some((seq, hash)) if record.prev != *hash => Some(format!(
                        "the record does not follow record {seq} (a record was removed, inserted or moved)"
                    )),
                    Some((seq, _)) if record.seq != seq + 1 => {
                        Some(format!("sequence jumps from {seq} to {}", record.seq))
                    }
                    Some(_) => None,
                }
            };
            if let Some(reason) = problem {
                report.first_break = Some(brk(reason));
                return Ok(report);
            }
            report.first_seq.get_or_insert(record.seq);
            report.records += 1;
            prev = Some((record.seq, record.hash));
        }
    }
    Ok(report)
}
