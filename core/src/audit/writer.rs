//! Writing the log: records sealed into the chain, rotation, the seal.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::chain::{new_log_id, ChainKey};
use super::files;
use super::record::{split_line, AuditRecord, AuditResult, GENESIS};
use super::seal::{self, Seal, SealFile, SealState};
use super::{AuditConfig, AuditQuery, FlushMode};
use crate::error::{Error, ErrorKind, Result};
use crate::private_files;

/// Buffered bytes that make a batch flush at once.
const BATCH_BYTES: usize = 64 * 1024;
/// How often buffered records are written and sealed (batch mode).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The principal of the log's own records.
const LOG_PRINCIPAL: &str = "tierfs";

#[derive(Debug)]
struct Writer {
    file: File,
    buffer: Vec<u8>,
    size: u64,
    /// The last record appended (buffered or written) and its hash.
    seq: u64,
    prev: String,
    /// The last record that reached the file, and its hash.
    written: Option<(u64, String)>,
    first_seq: u64,
    log_id: String,
    seal: SealFile,
    failed: Option<String>,
}

#[derive(Debug)]
struct Shared {
    config: AuditConfig,
    key: ChainKey,
    writer: Mutex<Writer>,
}

/// An open audit log; see the [module documentation](super).
#[derive(Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl AuditLog {
    /// Opens (or creates) the log, continuing its chain where it ended.
    ///
    /// A new log gets a new id, its genesis record and, if the key file is
    /// missing, a new key. An existing log must end in a record sealed
    /// with the key; if it ends before its seal (records were removed
    /// while it was closed), an `audit:gap` record says so, and
    /// [`verify`](super::verify) reports it.
    pub fn open(config: &AuditConfig) -> Result<AuditLog> {
        let path = &config.path;
        let io =
            |e| Error::io(format!("cannot open the audit log {}; check `[audit] path`", path.display()), e);
        let gid = config.group.as_deref().map(group_id).transpose()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let created = !dir.exists();
            private_files::create_dir_private(dir).map_err(io)?;
            if let (true, Some(gid)) = (created, gid) {
                // The group must get through the directory made for the log.
                std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io)?;
            }
        }
        let records = files::record_files(path);
        let key_path = config.key_path();
        let key = if key_path.exists() || !records.is_empty() {
            ChainKey::load(&key_path)?
        } else {
            ChainKey::create(&key_path)?
        };
        let file = private_files::private_options().create(true).append(true).open(path).map_err(io)?;
        share_with_group(&file, path, gid)?;
        let size = file.metadata().map_err(io)?.len();
        let seal = SealFile::open(&config.seal_path())?;
        let (log_id, first_seq, seq, prev, gap) = match resume(&records, &key, &config.seal_path())? {
            Some(resumed) => resumed,
            None => (new_log_id()?, 0, 0, GENESIS.to_owned(), None),
        };
        let fresh = records.is_empty();
        let prev_hash = prev.clone();
        let writer = Writer {
            file,
            buffer: Vec::new(),
            size,
            seq,
            prev,
            written: (!fresh).then_some((seq, prev_hash)),
            first_seq,
            log_id,
            seal,
            failed: None,
        };
        let shared = Arc::new(Shared { config: config.clone(), key, writer: Mutex::new(writer) });
        {
            let mut w = shared.writer.lock();
            let opening = match (fresh, gap) {
                (true, _) => {
                    let log = w.log_id.clone();
                    shared.push_locked(&mut w, "audit:genesis", &[], None, Some(&log), 0)
                }
                (false, Some(why)) => {
                    // The evidence goes into the chain before the seal is renewed.
                    let seq = w.seq + 1;
                    shared.push_locked(&mut w, "audit:gap", &[], Some(&why), None, seq)
                }
                (false, None) => Ok(()),
            };
            // A log that cannot be written now (a full disk) refuses
            // operations later, as any write failure does.
            let flushed = opening.and_then(|()| shared.flush_locked(&mut w));
            // Both seal slots anew: a crash may have spoiled one.
            let resealed = flushed.and_then(|()| shared.seal_locked(&mut w));
            if let Err(e) = resealed {
                tracing::error!(error = %e, "the audit log cannot be written");
            }
        }
        if config.flush == FlushMode::Batch {
            let weak = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("tierfs-audit".into())
                .spawn(move || flush_periodically(weak))
                .map_err(|e| Error::io("cannot start the audit log's flusher", e))?;
        }
        Ok(AuditLog { shared })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// Refuses a log file, key file or seal other users may read or change
    /// (the group of `audit.group` may read the log).
    pub fn check_private(&self) -> Result<()> {
        let config = &self.shared.config;
        let group = config.group.is_some();
        if std::fs::metadata(&config.path).is_ok_and(|m| m.is_file()) {
            private_files::check_private(&config.path, "the audit log", group)?;
        }
        private_files::check_private(&config.seal_path(), "the audit seal", false)
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
        let shared = &self.shared;
        let mut w = shared.writer.lock();
        if let Some(why) = &w.failed {
            return Err(shared.unwritable(why.clone()));
        }
        let make = |w: &Writer| {
            let record = AuditRecord {
                seq: w.seq + 1,
                time: super::format_time(SystemTime::now()),
                principal: principal.to_owned(),
                operation: operation.to_owned(),
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                result,
                detail: detail.map(str::to_owned),
                log: None,
                prev: w.prev.clone(),
                hash: String::new(),
            };
            let sealed = record.sealed_bytes();
            let hash = shared.key.seal(&sealed);
            (record.seq, AuditRecord::line(&sealed, &hash), hash)
        };
        let (mut seq, mut line, mut hash) = make(&w);
        if w.size + (w.buffer.len() + line.len()) as u64 > shared.config.max_file_mib << 20 {
            shared.flush_locked(&mut w)?;
            shared.rotate_locked(&mut w)?;
            // The rotation record took the next place in the chain.
            (seq, line, hash) = make(&w);
        }
        shared.buffer_locked(&mut w, line, seq, hash)
    }

    /// Writes buffered records (batch mode) and seals the log.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.shared.writer.lock();
        self.shared.flush_locked(&mut w)
    }

    /// The records matching `query`, oldest first, at most `limit` (the most recent).
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.flush()?;
        let limit = query.limit.unwrap_or(1000);
        let mut out = std::collections::VecDeque::new();
        for file in files::log_files(&self.shared.config.path)? {
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

impl Shared {
    fn unwritable(&self, why: String) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the audit log {} cannot be written ({why}); operations are refused until it can (set `[audit] on_failure = \"open\"` to allow them)",
                self.config.path.display()
            ),
        )
    }

    /// Seals and buffers one of the log's own records.
    fn push_locked(
        &self,
        w: &mut Writer,
        operation: &str,
        keys: &[&str],
        detail: Option<&str>,
        log: Option<&str>,
        seq: u64,
    ) -> Result<()> {
        let record = AuditRecord {
            seq,
            time: super::format_time(SystemTime::now()),
            principal: LOG_PRINCIPAL.to_owned(),
            operation: operation.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            result: AuditResult::Allowed,
            detail: detail.map(str::to_owned),
            log: log.map(str::to_owned),
            prev: w.prev.clone(),
            hash: String::new(),
        };
        let sealed = record.sealed_bytes();
        let hash = self.key.seal(&sealed);
        let line = AuditRecord::line(&sealed, &hash);
        self.buffer_locked(w, line, seq, hash)
    }

    fn buffer_locked(&self, w: &mut Writer, line: Vec<u8>, seq: u64, hash: String) -> Result<()> {
        w.buffer.extend_from_slice(&line);
        w.seq = seq;
        w.prev = hash;
        if self.config.flush == FlushMode::Record || w.buffer.len() >= BATCH_BYTES {
            self.flush_locked(w)?;
        }
        Ok(())
    }

    /// Writes the buffer, then the seal. On failure nothing more is
    /// written: what reached the file is unknown, and the chain is never
    /// continued past a hole.
    fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        if let Some(why) = &w.failed {
            return Err(self.unwritable(why.clone()));
        }
        if w.buffer.is_empty() && w.written.as_ref().is_some_and(|(seq, _)| *seq == w.seq) {
            return Ok(());
        }
        let fsync = self.config.fsync;
        let written =
            w.file.write_all(&w.buffer).and_then(|_| if fsync { w.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            w.buffer.clear();
            w.failed = Some(e.to_string());
            return Err(self.unwritable(e.to_string()));
        }
        w.size += w.buffer.len() as u64;
        w.buffer.clear();
        w.written = Some((w.seq, w.prev.clone()));
        self.seal_locked(w)
    }

    /// Seals what reached the file.
    fn seal_locked(&self, w: &mut Writer) -> Result<()> {
        if let Some(why) = &w.failed {
            return Err(self.unwritable(why.clone()));
        }
        let Some((seq, hash)) = w.written.clone() else { return Ok(()) };
        let time = super::format_time(SystemTime::now());
        let seal = Seal::new(&self.key, &w.log_id, w.first_seq, seq, &hash, time);
        if let Err(e) = w.seal.write(&seal, self.config.fsync) {
            let why = format!("its seal {} cannot be written: {e}", w.seal.path().display());
            w.failed = Some(why.clone());
            return Err(self.unwritable(why));
        }
        Ok(())
    }

    /// Moves the full file aside and starts the next with an `audit:rotate`
    /// record linking to the last record of the one before.
    fn rotate_locked(&self, w: &mut Writer) -> Result<()> {
        let path = &self.config.path;
        files::rotate(path, self.config.max_files)?;
        w.file = private_files::private_options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("cannot create the audit log {}", path.display()), e))?;
        let gid = self.config.group.as_deref().map(group_id).transpose()?;
        share_with_group(&w.file, path, gid)?;
        w.size = 0;
        // The oldest file kept may have changed: the seal names its first record.
        if let Some(oldest) = files::record_files(path).first() {
            if let Ok(Some(line)) = files::first_line(oldest) {
                if let Ok(record) = serde_json::from_slice::<AuditRecord>(&line) {
                    w.first_seq = record.seq;
                }
            }
        }
        let (log, seq) = (w.log_id.clone(), w.seq + 1);
        self.push_locked(w, "audit:rotate", &[], None, Some(&log), seq)?;
        self.flush_locked(w)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut w = self.writer.lock();
        if let Err(e) = self.flush_locked(&mut w) {
            tracing::error!(error = %e, "audit records lost at close");
        }
    }
}

fn flush_periodically(log: Weak<Shared>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(shared) = log.upgrade() else { return };
        let mut w = shared.writer.lock();
        if let Err(e) = shared.flush_locked(&mut w) {
            tracing::debug!(error = %e, "periodic audit flush failed");
        }
    }
}

/// Where an existing log goes on: its id, first record, last record and
/// hash, and why records are missing, if they are.
type Resumed = (String, u64, u64, String, Option<String>);

fn resume(records: &[std::path::PathBuf], key: &ChainKey, seal_path: &Path) -> Result<Option<Resumed>> {
    let (Some(oldest), Some(newest)) = (records.first(), records.last()) else { return Ok(None) };
    let damaged = |file: &Path, why: &str| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the audit log {} cannot be continued: {why}; run `tierfs audit verify`, then move the log's files away to start a new log",
                file.display()
            ),
        )
    };
    let read = |file: &Path, e: std::io::Error| {
        Error::io(format!("cannot read the audit log {}", file.display()), e)
    };
    let (line, complete) = files::last_line(newest)
        .map_err(|e| read(newest, e))?
        .ok_or_else(|| damaged(newest, "it is empty"))?;
    if !complete {
        return Err(damaged(newest, "its last line is cut short"));
    }
    let genuine = split_line(&line).is_some_and(|(sealed, hash)| key.verify(sealed, hash));
    if !genuine {
        return Err(damaged(
            newest,
            &format!(
                "its last record is not sealed with the key in {} (edited, or written with another key)",
                key.path().display()
            ),
        ));
    }
    let last: AuditRecord = serde_json::from_slice(&line)
        .map_err(|e| damaged(newest, &format!("its last record does not parse: {e}")))?;
    let first_line = files::first_line(oldest).map_err(|e| read(oldest, e))?.unwrap_or_default();
    let first: Option<AuditRecord> = serde_json::from_slice(&first_line).ok();
    let seal = seal::read(seal_path, key)?;
    let log_id = first
        .as_ref()
        .and_then(|r| r.log.clone())
        .or_else(|| match &seal {
            SealState::Sealed(s) => Some(s.log.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            damaged(oldest, "its first record is not a genesis or rotation record, and no seal names the log")
        })?;
    let first_seq = first.map_or(last.seq, |r| r.seq);
    let gap = match seal {
        SealState::Sealed(s) if s.log != log_id => {
            Some(format!("the seal {} belongs to log {}, not this one", seal_path.display(), s.log))
        }
        SealState::Sealed(s) if s.seq > last.seq => Some(format!(
            "the log ended at record {} when reopened, but was sealed at record {} on {}: records {}..={} are missing",
            last.seq,
            s.seq,
            s.time,
            last.seq + 1,
            s.seq
        )),
        SealState::Sealed(_) => None,
        SealState::Missing => Some(format!("the seal {} was missing when the log was reopened", seal_path.display())),
        SealState::Forged => {
            Some(format!("the seal {} did not verify when the log was reopened", seal_path.display()))
        }
    };
    Ok(Some((log_id, first_seq, last.seq, last.hash, gap)))
}

/// The gid of group `name`.
fn group_id(name: &str) -> Result<u32> {
    let unknown = || {
        Error::new(
            ErrorKind::Config,
            format!("`audit.group`: no group named `{name}` on this host; name an existing group"),
        )
    };
    let c_name = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero group is a valid value to be overwritten.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: the pointers are valid for the call and `buf` is as long as we say.
        let rc = unsafe {
            libc::getgrnam_r(c_name.as_ptr(), &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(unknown());
        }
        return Ok(grp.gr_gid);
    }
}

/// Gives the log file to group `gid`, readable by it (`0640`); without a
/// group the file stays `0600`.
fn share_with_group(file: &File, path: &Path, gid: Option<u32>) -> Result<()> {
    let Some(gid) = gid else { return Ok(()) };
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let io = |e| Error::io(format!("cannot give the audit log {} to its group", path.display()), e);
    std::os::unix::fs::fchown(file, None, Some(gid)).map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o640)).map_err(io)
}
