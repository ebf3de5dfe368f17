//! Checking a log: every line sealed with the key over its exact bytes,
//! the chain unbroken from its genesis (or rotation) record, and the log
//! ending no earlier than its seal.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use super::chain::ChainKey;
use super::files;
use super::record::{split_line, AuditRecord, GENESIS};
use super::seal::{self, Seal, SealState};
use super::AuditConfig;
use crate::error::{Error, Result};

/// The kind of tampering a break shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tampering {
    /// A line's bytes are not what its hash seals: a field, a value or
    /// whitespace was changed, a field added, or the hash recomputed
    /// without the key.
    Edited,
    /// A line is not a record as TierFS writes it (an empty line, bytes
    /// around the record).
    NotARecord,
    /// Records are missing between two others.
    Removed,
    /// A record appears after one that follows it (moved or duplicated).
    Reordered,
    /// A record does not link to the one before: it comes from another
    /// chain.
    Inserted,
    /// The log does not begin where it should: its first records, or
    /// whole older files, were removed.
    HeadRemoved,
    /// The log ends before its seal, a line is cut short, or the writer
    /// found records missing when it reopened the log.
    Truncated,
    /// The seal is missing, or does not verify with the key.
    Seal,
    /// A record or the seal names another log.
    WrongLog,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tampering::Edited => "edited",
            Tampering::NotARecord => "not a record",
            Tampering::Removed => "records removed",
            Tampering::Reordered => "reordered",
            Tampering::Inserted => "inserted",
            Tampering::HeadRemoved => "beginning removed",
            Tampering::Truncated => "truncated",
            Tampering::Seal => "seal missing or forged",
            Tampering::WrongLog => "another log",
        })
    }
}

/// Where the chain first breaks, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The file.
    pub file: PathBuf,
    /// Line number in that file, from 1 (one past the last line when
    /// records are missing at the end).
    pub line: usize,
    /// The kind of tampering.
    pub kind: Tampering,
    /// What is wrong, in words.
    pub reason: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Records of operations verified before the first break (all of them
    /// if none); the log's own `audit:*` records are not counted.
    pub records: u64,
    /// Sequence number of the first record (0 for a log with its genesis
    /// record; more once older files were rotated away).
    pub first_seq: Option<u64>,
    /// Sequence number of the last record verified.
    pub last_seq: Option<u64>,
    /// The seal, if one verified.
    pub seal: Option<Seal>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
    /// Every break found: the `audit:gap` records (the writer found
    /// records missing; checking goes on after them, since the gap record
    /// itself is sealed) and the first break of the chain, if any.
    pub breaks: Vec<ChainBreak>,
}

impl VerifyReport {
    /// Whether the whole chain holds and reaches its seal.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Checks the log of `config`, its rotated files and its seal, with the
/// key of `config`:
/// - every line is a record as written, sealed with the key over its
///   exact bytes;
/// - the first record is the genesis record (or, once older files were
///   rotated away, the rotation record the seal names as the first kept);
/// - each record links to the one before and sequence numbers follow one
///   another, across files;
/// - the log reaches the record its seal names, with the sealed hash.
///
/// The report names the first break: its file, line and kind.
pub fn verify(config: &AuditConfig) -> Result<VerifyReport> {
    let key = ChainKey::load(&config.key_path())?;
    let files = files::log_files(&config.path)?;
    let seal = seal::read(&config.seal_path(), &key)?;
    let mut check = Check {
        key: &key,
        seal: match &seal {
            SealState::Sealed(s) => Some(s),
            _ => None,
        },
        log: None,
        prev: None,
        records: 0,
        first_seq: None,
    };
    let mut report = VerifyReport {
        files: files.clone(),
        records: 0,
        first_seq: None,
        last_seq: None,
        seal: check.seal.cloned(),
        first_break: None,
        breaks: Vec::new(),
    };
    let mut end = (config.path.clone(), 1);
    for file in files.iter().filter(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file())) {
        let mut reader = BufReader::new(
            std::fs::File::open(file)
                .map_err(|e| Error::io(format!("cannot read the audit log {}", file.display()), e))?,
        );
        let mut number = 0;
        loop {
            let mut line = Vec::new();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io(format!("cannot read the audit log {}", file.display()), e))?;
            if n == 0 {
                break;
            }
            number += 1;
            let checked = check.line(&line);
            if let Ok(Some(reason)) = &checked {
                let gap = ChainBreak {
                    file: file.clone(),
                    line: number,
                    kind: Tampering::Truncated,
                    reason: reason.clone(),
                };
                report.breaks.push(gap);
            }
            if let Err((mut kind, mut reason)) = checked {
                if kind == Tampering::Removed {
                    // Missing here, but perhaps further on: then it was moved.
                    let expected = check.prev.as_ref().map_or(0, |(seq, _)| seq + 1);
                    if let Some((at, n)) = find_seq(&files, file, reader, number, expected) {
                        kind = Tampering::Reordered;
                        reason = format!(
                            "record {expected} should come here, but is at {}:{n}: it was moved",
                            at.display()
                        );
                    }
                }
                report.breaks.push(ChainBreak { file: file.clone(), line: number, kind, reason });
                return Ok(check.finish(report));
            }
        }
        end = (file.clone(), number + 1);
    }
    let (file, line) = end;
    let brk = |kind, reason| Some(ChainBreak { file: file.clone(), line, kind, reason });
    let at_end = match (&seal, &check.prev) {
        (SealState::Missing, _) => brk(
            Tampering::Seal,
            format!(
                "the seal {} is missing: records removed from the end would not show",
                config.seal_path().display()
            ),
        ),
        (SealState::Forged, _) => brk(
            Tampering::Seal,
            format!("the seal {} does not verify with the key (edited or replaced)", config.seal_path().display()),
        ),
        (SealState::Sealed(s), _) if check.log.as_deref().is_some_and(|l| l != s.log) => {
            brk(Tampering::WrongLog, format!("the seal belongs to log {}, not to this one", s.log))
        }
        (SealState::Sealed(s), None) => {
            brk(Tampering::Truncated, format!("the log holds no record, but was sealed at record {} on {}", s.seq, s.time))
        }
        (SealState::Sealed(s), Some((last, _))) if *last < s.seq => brk(
            Tampering::Truncated,
            format!(
                "the log ends at record {last}, but was sealed at record {} on {}: records {}..={} were removed from its end",
                s.seq,
                s.time,
                last + 1,
                s.seq
            ),
        ),
        (SealState::Sealed(_), Some(_)) => None,
    };
    report.breaks.extend(at_end);
    Ok(check.finish(report))
}

/// Where record `seq` is after line `number` of `file` (read on by
/// `reader`) or in a newer file, if anywhere.
fn find_seq(
    files: &[PathBuf],
    file: &std::path::Path,
    mut reader: impl BufRead,
    number: usize,
    seq: u64,
) -> Option<(PathBuf, usize)> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    let scan = |reader: &mut dyn BufRead, at: &std::path::Path, mut n: usize| {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).ok()? == 0 {
                return None;
            }
            n += 1;
            if serde_json::from_slice::<Seq>(line.trim_ascii()).is_ok_and(|r| r.seq == seq) {
                return Some((at.to_path_buf(), n));
            }
        }
    };
    if let Some(found) = scan(&mut reader, file, number) {
        return Some(found);
    }
    let later = files.iter().skip_while(|f| f.as_path() != file).skip(1);
    for next in later {
        let mut reader = BufReader::new(std::fs::File::open(next).ok()?);
        if let Some(found) = scan(&mut reader, next, 0) {
            return Some(found);
        }
    }
    None
}

struct Check<'a> {
    key: &'a ChainKey,
    seal: Option<&'a Seal>,
    log: Option<String>,
    prev: Option<(u64, String)>,
    records: u64,
    first_seq: Option<u64>,
}

impl Check<'_> {
    fn finish(&self, mut report: VerifyReport) -> VerifyReport {
        report.first_break = report.breaks.first().cloned();
        report.records = self.records;
        report.first_seq = self.first_seq;
        report.last_seq = self.prev.as_ref().map(|(seq, _)| *seq);
        report
    }

    /// Checks one line (with its newline, if it has one); an `audit:gap`
    /// record, sound in itself, comes back as `Ok(Some(why))`.
    fn line(&mut self, raw: &[u8]) -> std::result::Result<Option<String>, (Tampering, String)> {
        let Some(line) = raw.strip_suffix(b"\n") else {
            return Err((
                Tampering::Truncated,
                "the line is cut short: the file was truncated inside a record".into(),
            ));
        };
        if line.is_empty() {
            return Err((Tampering::NotARecord, "an empty line was inserted".into()));
        }
        let Some((sealed, hash)) = split_line(line) else {
            return Err((
                Tampering::NotARecord,
                "the line is not a record as TierFS writes it (bytes were added around it, or its hash was removed)".into(),
            ));
        };
        if !self.key.verify(sealed, hash) {
            return Err((
                Tampering::Edited,
                "the line's bytes do not match its hash under the log's key: it was edited (a field, a value or whitespace changed, or a field added), or rewritten without the key".into(),
            ));
        }
        let record: AuditRecord = serde_json::from_slice(line)
            .map_err(|e| (Tampering::NotARecord, format!("the line does not parse as a record: {e}")))?;
        if let Some(log) = &record.log {
            match &self.log {
                Some(ours) if ours != log => {
                    return Err((Tampering::WrongLog, format!("the record belongs to log {log}, not {ours}")))
                }
                _ => self.log = Some(log.clone()),
            }
        }
        match &self.prev {
            None => self.first(&record)?,
            Some((seq, hash)) => {
                if record.seq > seq + 1 {
                    return Err((
                        Tampering::Removed,
                        format!(
                            "records {}..={} are missing before this one (record {})",
                            seq + 1,
                            record.seq - 1,
                            record.seq
                        ),
                    ));
                }
                if record.seq <= *seq {
                    return Err((
                        Tampering::Reordered,
                        format!("record {} comes after record {seq}: it was moved or duplicated", record.seq),
                    ));
                }
                if record.prev != *hash {
                    return Err((
                        Tampering::Inserted,
                        format!(
                            "record {} does not link to record {seq} before it: it comes from another chain",
                            record.seq
                        ),
                    ));
                }
            }
        }
        if let Some(seal) = self.seal.filter(|s| s.seq == record.seq) {
            if seal.hash != record.hash {
                return Err((
                    Tampering::Edited,
                    format!("record {} is not the one sealed on {}: it was replaced", record.seq, seal.time),
                ));
            }
        }
        let gap = (record.operation == "audit:gap").then(|| {
            format!(
                "the writer found records missing when it opened the log: {}",
                record.detail.as_deref().unwrap_or("")
            )
        });
        if !record.is_log_record() {
            self.records += 1;
        }
        self.prev = Some((record.seq, record.hash));
        Ok(gap)
    }

    /// The first record must begin the log: its genesis record, or the
    /// rotation record the seal names as the first kept.
    fn first(&mut self, record: &AuditRecord) -> std::result::Result<(), (Tampering, String)> {
        let genesis = record.operation == "audit:genesis" && record.seq == 0 && record.prev == GENESIS;
        let rotation = record.operation == "audit:rotate" && record.log.is_some();
        if !genesis && !rotation {
            return Err((
                Tampering::HeadRemoved,
                format!(
                    "the log begins with record {}, not with its genesis record (or a rotation record once older files are gone): its first records were removed",
                    record.seq
                ),
            ));
        }
        if let Some(seal) = self.seal {
            if record.seq != seal.first_seq {
                return Err((
                    Tampering::HeadRemoved,
                    format!(
                        "the log begins with record {}, but its seal says the oldest record kept is {}: older files were removed",
                        record.seq, seal.first_seq
                    ),
                ));
            }
        }
        self.first_seq = Some(record.seq);
        Ok(())
    }
}
