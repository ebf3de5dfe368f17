//! The hint log: the key table's lagging marks and tombstones on disk, so a
//! key deleted (or renamed away) while a member was down stays deleted
//! after a crash and restart, and a stale copy stays distrusted.
//!
//! The file is JSON lines: a header naming the members, then one record
//! per change of a key's persisted hint (its lagging marks, by member name,
//! and its tombstone; no marks clears the key). Replaying keeps each key's
//! last record.
//!
//! Invariants:
//! - A record is buffered under the key table's lock, in the order the
//!   changes happened, and written by [`HintLog::persist`], which a write
//!   calls before it is acknowledged: an acknowledged write's marks are on
//!   disk (appended and `fdatasync`ed) before its caller hears of success.
//!   Concurrent writers share one `fdatasync` (group commit).
//! - Only keys some member lags on are persisted; a key whose members all
//!   hold the write is never written, so a healthy set with the default
//!   quorum does no hint I/O at all.
//! - A torn last line (a crash mid-append) is ignored on replay; any other
//!   unreadable line refuses the open, naming the file and line.
//! - The file is rewritten (temporary file, `fsync`, rename, `fsync` of the
//!   directory) at open, once it holds far more records than live keys,
//!   and after any failed write (whose records may be torn or missing);
//!   the rewrite and appends share one lock, held by the blocking task
//!   that writes until it ends, so no record is lost between.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

use super::hint::Hint;

/// Records written since the last rewrite, beyond which (and beyond four
/// times the live keys) the file is rewritten.
const REWRITE_AFTER: u64 = 10_000;

#[derive(Serialize, Deserialize)]
struct Header {
    tierfs_hints: u32,
    members: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    lagging: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tombstone: Option<u64>,
}

/// Records not yet written, and how many were ever buffered.
#[derive(Default)]
struct Pending {
    buffered: u64,
    lines: Vec<u8>,
}

/// What one locked write of the log does.
enum Job {
    /// Appends the records buffered up to record number `upto`.
    Append { lines: Vec<u8>, upto: u64 },
    /// Writes the file afresh from the live hints, which reflect every
    /// record up to `upto`.
    Rewrite { hints: HashMap<String, Hint>, upto: u64 },
}

/// The open file and how far it is durable.
struct Written {
    file: Arc<File>,
    durable: u64,
    since_rewrite: u64,
    /// An append failed (its records may be torn or missing): the next
    /// persist rewrites the file from the live hints.
    damaged: bool,
}

/// A key table's hints on disk (see the module docs).
pub(super) struct HintLog {
    /// `<log>.lock`, locked (`flock`) while the log is open here; a lock
    /// file of its own, because a rewrite replaces the log's inode.
    _lock: File,
    path: PathBuf,
    members: Vec<String>,
    pending: Mutex<Pending>,
    written: Arc<tokio::sync::Mutex<Written>>,
    /// `Written::durable`, readable without the lock.
    durable: Arc<AtomicU64>,
}

impl std::fmt::Debug for HintLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl HintLog {
    /// Opens (or creates) the log at `path` for a set of `members` (names,
    /// in order), rewrites it with its live hints, and returns it with
    /// those hints by member index. Marks of members no longer in the set
    /// are dropped with a warning.
    pub(super) fn open(path: &Path, members: &[String]) -> Result<(HintLog, HashMap<String, Hint>)> {
        let fail = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot {what} the redundant set's hint log {}: {e}", path.display()),
            )
            .with_operation("open")
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_files::create_dir_private(dir).map_err(|e| fail("create the directory of", e))?;
        }
        let lock = lock(path).map_err(|e| fail("lock", e))?.ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the hint log {} is in use by another process; give each process its own `hints_path`",
                    path.display()
                ),
            )
            .with_operation("open")
        })?;
        let hints = match File::open(path) {
            Ok(file) => replay(path, file, members)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(fail("read", e)),
        };
        let file = rewrite(path, members, &hints).map_err(|e| fail("write", e))?;
        let log = HintLog {
            _lock: lock,
            path: path.to_path_buf(),
            members: members.to_vec(),
            pending: Mutex::new(Pending::default()),
            written: Arc::new(tokio::sync::Mutex::new(Written {
                file: Arc::new(file),
                durable: 0,
                since_rewrite: 0,
                damaged: false,
            })),
            durable: Arc::new(AtomicU64::new(0)),
        };
        Ok((log, hints))
    }

    /// Buffers the new persisted state of `key` (`None`: nothing lags).
    /// Called under the key table's lock, so records keep its order.
    pub(super) fn record(&self, key: &str, hint: Option<&Hint>) {
        let record = Record {
            key: key.to_owned(),
            lagging: hint
                .map(|h| h.lagging.iter().map(|(m, rev)| (self.members[*m].clone(), *rev)).collect())
                .unwrap_or_default(),
            tombstone: hint.and_then(|h| h.tombstone),
        };
        let mut pending = self.pending.lock();
        serde_json::to_writer(&mut pending.lines, &record).expect("a hint record serialises");
        pending.lines.push(b'\n');
        pending.buffered += 1;
    }

    /// Makes every record buffered so far durable. The file is rewritten
    /// instead when an earlier write to it failed, or when it holds far
    /// more records than the `live_keys` the key table persists; then
    /// `snapshot` is called: under the key table's lock it returns the live
    /// hints and [`HintLog::take_pending`], whose records the snapshot
    /// already reflects.
    ///
    /// The file's lock is held by the blocking task that writes, to its
    /// end: a caller that is cancelled (a dropped future) cannot leave a
    /// write half-recorded, and whatever fails marks the file for a rewrite
    /// from the live hints, so no buffered record is ever skipped.
    pub(super) async fn persist(
        &self,
        live_keys: usize,
        snapshot: impl FnOnce() -> (HashMap<String, Hint>, (Vec<u8>, u64)),
    ) -> Result<()> {
        let target = self.pending.lock().buffered;
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut written = self.written.clone().lock_owned().await;
        if written.durable >= target {
            return Ok(());
        }
        // Records in the file once these are appended.
        let records = written.since_rewrite + (target - written.durable);
        let rewrite_due = written.damaged || (records > REWRITE_AFTER && records > 4 * live_keys as u64);
        let job = match rewrite_due {
            true => {
                let (hints, (_, upto)) = snapshot();
                Job::Rewrite { hints, upto }
            }
            false => {
                let (lines, upto) = self.take_pending();
                Job::Append { lines, upto }
            }
        };
        let (path, members, durable) = (self.path.clone(), self.members.clone(), self.durable.clone());
        crate::blocking::run("the hint log", move || {
            written.damaged = true;
            match job {
                Job::Append { lines, upto } => {
                    (&*written.file).write_all(&lines)?;
                    written.file.sync_data()?;
                    written.since_rewrite += upto.saturating_sub(written.durable);
                    written.durable = upto;
                }
                Job::Rewrite { hints, upto } => {
                    written.file = Arc::new(rewrite(&path, &members, &hints)?);
                    written.durable = upto;
                    written.since_rewrite = 0;
                }
            }
            written.damaged = false;
            durable.store(written.durable, Ordering::Release);
            Ok(())
        })
        .await?
        .map_err(|e| self.io_error("write", e))
    }

    /// Takes the records buffered so far: returns them and how many
    /// records were ever buffered.
    pub(super) fn take_pending(&self) -> (Vec<u8>, u64) {
        let mut pending = self.pending.lock();
        (std::mem::take(&mut pending.lines), pending.buffered)
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot {what} the redundant set's hint log {}: {e}; the write reached its members but \
                 whether each copy is current could not be recorded",
                self.path.display()
            ),
        )
        .with_source(e)
        .retryable(true)
    }
}

/// Locks `<path>.lock` for this process; `None` if another holds it.
fn lock(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::io::AsRawFd;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path.with_file_name(format!("{name}.lock")))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let err = std::io::Error::last_os_error();
    match err.kind() {
        std::io::ErrorKind::WouldBlock => Ok(None),
        _ => Err(err),
    }
}

/// Reads the log in `file`: each key's last record, by member index.
fn replay(path: &Path, file: File, members: &[String]) -> Result<HashMap<String, Hint>> {
    let bad = |line: usize, why: String| {
        Error::new(
            ErrorKind::Config,
            format!(
                "the redundant set's hint log {} is damaged at line {line}: {why}; move it aside to start \
                 without hints (the scrubber then restores missing copies, which may bring back keys \
                 deleted while a member was down)",
                path.display()
            ),
        )
        .with_operation("open")
    };
    let mut lines = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        lines.push(line.map_err(|e| bad(lines.len() + 1, e.to_string()))?);
    }
    let mut hints = HashMap::new();
    let Some((first, records)) = lines.split_first() else { return Ok(hints) };
    let header: Header = match serde_json::from_slice(first) {
        Ok(h) => h,
        Err(_) if records.is_empty() => return Ok(hints), // torn before its first record
        Err(e) => return Err(bad(1, e.to_string())),
    };
    if header.tierfs_hints != 1 {
        return Err(bad(1, format!("format {} is not known to this tierfs", header.tierfs_hints)));
    }
    let mut dropped = std::collections::BTreeSet::new();
    for (i, line) in records.iter().enumerate() {
        let record: Record = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(_) if i + 1 == records.len() => {
                tracing::warn!(log = %path.display(), "ignoring the hint log's torn last line (a crash mid-append)");
                break;
            }
            Err(e) => return Err(bad(i + 2, e.to_string())),
        };
        let mut lagging = BTreeMap::new();
        for (name, rev) in record.lagging {
            match members.iter().position(|m| *m == name) {
                Some(m) => {
                    lagging.insert(m, rev);
                }
                None => {
                    dropped.insert(name);
                }
            }
        }
        if lagging.is_empty() {
            hints.remove(&record.key);
        } else {
            hints.insert(record.key, Hint { lagging, tombstone: record.tombstone });
        }
    }
    if !dropped.is_empty() {
        tracing::warn!(
            log = %path.display(), members = ?dropped, was = ?header.members,
            "the hint log names members no longer in the set; their marks are dropped"
        );
    }
    Ok(hints)
}

/// Writes `hints` as a fresh log at `path` (atomically) and returns it open
/// for appending.
fn rewrite(path: &Path, members: &[String], hints: &HashMap<String, Hint>) -> std::io::Result<File> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.rewrite"));
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?,
    );
    serde_json::to_writer(&mut out, &Header { tierfs_hints: 1, members: members.to_vec() })?;
    out.write_all(b"\n")?;
    let mut keys: Vec<&String> = hints.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let hint = &hints[key];
        let record = Record {
            key: key.clone(),
            lagging: hint.lagging.iter().map(|(m, rev)| (members[*m].clone(), *rev)).collect(),
            tombstone: hint.tombstone,
        };
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    std::fs::OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::super::hints::KeyTable;
    use super::*;

    fn members() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn only_lagging_keys_are_written_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        // Every member took it: nothing to write.
        table.dispatched("quiet", 5, false, &[]);
        table.caught_up("quiet", 0, 5);
        table.persist().await.unwrap();
        assert_eq!(lines(&path).len(), 1, "only the header");
        // Member c skipped a delete: its mark and the tombstone are durable.
        table.dispatched("gone", 7, true, &[2]);
        table.persist().await.unwrap();
        assert_eq!(lines(&path).len(), 2);
        drop(table);
        let (table, newest) = KeyTable::open(&path, &members()).unwrap();
        assert_eq!(newest, 7);
        let hint = table.hint("gone").unwrap();
        assert_eq!((hint.lagging, hint.tombstone), (BTreeMap::from([(2, 7)]), Some(7)));
        // Caught up: cleared, and the reopened log is just its header.
        table.caught_up("gone", 2, 7);
        table.persist().await.unwrap();
        drop(table);
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        assert_eq!(table.hint("gone"), None);
        assert_eq!(lines(&path).len(), 1);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_other_damage_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        table.dispatched("x", 3, true, &[1]);
        table.dispatched("y", 4, true, &[1]);
        table.persist().await.unwrap();
        drop(table);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        assert!(table.hint("x").is_some() && table.hint("y").is_none(), "the torn record is ignored");
        drop(table);
        let mut damaged = lines(&path);
        damaged.insert(1, "{not json".into());
        damaged.push(r#"{"key":"z","lagging":{"a":1}}"#.into());
        std::fs::write(&path, damaged.join("\n") + "\n").unwrap();
        let e = KeyTable::open(&path, &members()).unwrap_err();
        assert!(e.to_string().contains("damaged at line 2"), "{e}");
    }

    #[test]
    fn a_second_opener_of_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let (_log, _) = HintLog::open(&path, &members()).unwrap();
        // As another process would: the table registry is bypassed.
        let e = HintLog::open(&path, &members()).unwrap_err();
        assert!(e.to_string().contains("in use by another process"), "{e}");
    }

    #[tokio::test]
    async fn members_are_matched_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        table.dispatched("k", 9, false, &[1, 2]);
        table.persist().await.unwrap();
        drop(table);
        // Reordered, and `b` removed from the set.
        let (table, _) = KeyTable::open(&path, &["c".into(), "a".into()]).unwrap();
        assert_eq!(table.hint("k").unwrap().lagging, BTreeMap::from([(0, 9)]));
    }

    #[tokio::test]
    async fn the_log_is_rewritten_once_mostly_dead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let (table, _) = KeyTable::open(&path, &members()).unwrap();
        for i in 0..(REWRITE_AFTER / 2 + 10) {
            let key = format!("k{i}");
            table.dispatched(&key, i + 1, false, &[0]);
            table.caught_up(&key, 0, i + 1);
        }
        table.dispatched("live", 1, false, &[0]);
        table.persist().await.unwrap();
        assert_eq!(lines(&path).len(), 2, "the header and the one live key");
    }
}
