//! Writing the log: records sealed into the chain, rotation, the seal.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    /// The settings in force (the path, key and seal never change).
    config: AuditConfig,
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
    path: PathBuf,
    key: ChainKey,
    writer: Mutex<Writer>,
}

/// An open audit log; see the [module documentation](super).
#[derive(Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

/// How an existing log goes on: its id, first record, last record and
/// hash, and why records are missing, if they are.
struct Resumed {
    log_id: String,
    first_seq: u64,
    seq: u64,
    prev: String,
    gap: Option<String>,
}

impl AuditLog {
    /// Opens (or creates) the log, continuing its chain where it ended.
    ///
    /// A new log gets a new id, its genesis record and, if the key file is
    /// missing, a new key. An existing log must end in a record sealed
    /// with the key. Records found missing (the log ends before its seal,
    /// its files are gone while its seal remains) are recorded by an
    /// `audit:gap` record, which [`verify`](super::verify) reports; a last
    /// line cut short by a crash is cut off and recorded the same way.
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
        let seal_path = config.seal_path();
        let seal_state = seal::read(&seal_path, &key)?;
        let resumed = resume(&records, &key, &seal_path, &seal_state)?;
        let file = private_files::private_options().create(true).append(true).open(path).map_err(io)?;
        share_with_group(&file, path, gid)?;
        let size = file.metadata().map_err(io)?.len();
        let seal = SealFile::open(&seal_path, &key)?;
        let fresh = resumed.is_none();
        let Resumed { log_id, first_seq, seq, prev, gap } = match resumed {
            Some(resumed) => resumed,
            None => Resumed {
                log_id: new_log_id()?,
                first_seq: 0,
                seq: 0,
                prev: GENESIS.to_owned(),
                // A seal without a log: the log's files were removed.
                gap: match &seal_state {
                    SealState::Missing => None,
                    SealState::Sealed(s) => Some(format!(
                        "the log's files were missing when it was opened, though its seal {} names log {} up to record {} ({}): a new log begins",
                        seal_path.display(),
                        s.log,
                        s.seq,
                        s.time
                    )),
                    SealState::Forged => Some(format!(
                        "the log's files were missing when it was opened, and its seal {} did not verify: a new log begins",
                        seal_path.display()
                    )),
                },
            },
        };
        let writer = Writer {
            config: config.clone(),
            file,
            buffer: Vec::new(),
            size,
            seq,
            written: (!fresh).then(|| (seq, prev.clone())),
            prev,
            first_seq,
            log_id,
            seal,
            failed: None,
        };
        let shared = Arc::new(Shared { path: path.clone(), key, writer: Mutex::new(writer) });
        {
            let mut w = shared.writer.lock();
            let mut opening = Ok(());
            if fresh {
                let log = w.log_id.clone();
                opening = shared.push_locked(&mut w, "audit:genesis", None, Some(&log), 0);
            }
            if let Some(why) = gap {
                // The evidence goes into the chain before the seal is renewed.
                let seq = if fresh { 1 } else { w.seq + 1 };
                opening =
                    opening.and_then(|()| shared.push_locked(&mut w, "audit:gap", Some(&why), None, seq));
            }
            // A log that cannot be written now (a full disk) refuses
            // operations later, as any write failure does.
            let flushed = opening.and_then(|()| shared.flush_locked(&mut w));
            // Both seal slots anew: a crash may have spoiled one.
            let resealed = flushed.and_then(|()| shared.seal_locked(&mut w, true));
            if let Err(e) = resealed {
                tracing::error!(error = %e, "the audit log cannot be written");
            }
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("tierfs-audit".into())
            .spawn(move || flush_periodically(weak))
            .map_err(|e| Error::io("cannot start the audit log's flusher", e))?;
        Ok(AuditLog { shared })
    }

    /// The configuration in force.
    pub fn config(&self) -> AuditConfig {
        self.shared.writer.lock().config.clone()
    }

    /// Whether `config` names this log: the same file, key and seal (its
    /// other settings may be changed in place, [`AuditLog::reconfigure`]).
    pub fn is_same_log(&self, config: &AuditConfig) -> bool {
        let w = self.shared.writer.lock();
        config.path == w.config.path
            && config.key_path() == w.config.key_path()
            && config.seal_path() == w.config.seal_path()
    }

    /// Takes `config`'s settings (rotation, failure mode, flushing, fsync,
    /// group) for the records that follow, keeping the one chain: a
    /// second writer of the same files would fork it. `config` must name
    /// this log ([`AuditLog::is_same_log`]).
    pub fn reconfigure(&self, config: &AuditConfig) -> Result<()> {
        if !self.is_same_log(config) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("{} is another log: open it instead", config.path.display()),
            ));
        }
        let gid = config.group.as_deref().map(group_id).transpose()?;
        let mut w = self.shared.writer.lock();
        self.shared.flush_locked(&mut w)?;
        share_with_group(&w.file, &self.shared.path, gid)?;
        w.config = config.clone();
        Ok(())
    }

    /// Refuses a log file, key file or seal other users may read or change
    /// (the group of `audit.group` may read the log).
    pub fn check_private(&self) -> Result<()> {
        let config = self.config();
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
        if w.size + (w.buffer.len() + line.len()) as u64 > w.config.max_file_mib << 20 {
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
        for file in files::log_files(&self.shared.path)? {
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
                self.path.display()
            ),
        )
    }

    /// Seals and buffers one of the log's own records.
    fn push_locked(
        &self,
        w: &mut Writer,
        operation: &str,
        detail: Option<&str>,
        log: Option<&str>,
        seq: u64,
    ) -> Result<()> {
        let record = AuditRecord {
            seq,
            time: super::format_time(SystemTime::now()),
            principal: LOG_PRINCIPAL.to_owned(),
            operation: operation.to_owned(),
            keys: Vec::new(),
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
        if w.config.flush == FlushMode::Record || w.buffer.len() >= BATCH_BYTES {
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
        let fsync = w.config.fsync;
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
        self.seal_locked(w, false)
    }

    /// Seals what reached the file (in both slots with `both`).
    fn seal_locked(&self, w: &mut Writer, both: bool) -> Result<()> {
        if let Some(why) = &w.failed {
            return Err(self.unwritable(why.clone()));
        }
        let Some((seq, hash)) = w.written.clone() else { return Ok(()) };
        let time = super::format_time(SystemTime::now());
        let seal = Seal::new(&self.key, &w.log_id, w.first_seq, seq, &hash, time);
        let fsync = w.config.fsync;
        let written = if both {
            w.seal.write_both(&self.key, &seal, fsync)
        } else {
            w.seal.write(&self.key, &seal, fsync)
        };
        if let Err(e) = written {
            let why = format!("its seal {} cannot be written: {e}", w.seal.path().display());
            w.failed = Some(why.clone());
            return Err(self.unwritable(why));
        }
        Ok(())
    }

    /// Moves the full file aside and starts the next with an `audit:rotate`
    /// record linking to the last record of the one before.
    fn rotate_locked(&self, w: &mut Writer) -> Result<()> {
        let path = &self.path;
        files::rotate(path, w.config.max_files)?;
        w.file = private_files::private_options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("cannot create the audit log {}", path.display()), e))?;
        let gid = w.config.group.as_deref().map(group_id).transpose()?;
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
        self.push_locked(w, "audit:rotate", None, Some(&log), seq)?;
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

fn resume(
    records: &[PathBuf],
    key: &ChainKey,
    seal_path: &Path,
    seal: &SealState,
) -> Result<Option<Resumed>> {
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
    // A last line cut short by a crash cannot be verified: it is cut off,
    // and the cut recorded.
    let mut gaps = Vec::new();
    if let Some(cut) = files::cut_torn_tail(newest).map_err(|e| read(newest, e))? {
        gaps.push(format!(
            "a last record cut short ({cut} bytes, by a crash while it was written) was removed from {}",
            newest.display()
        ));
    }
    let Some((line, _)) = files::last_line(newest).map_err(|e| read(newest, e))? else {
        return Err(damaged(newest, "it holds no complete record"));
    };
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
    let log_id = first
        .as_ref()
        .and_then(|r| r.log.clone())
        .or_else(|| match seal {
            SealState::Sealed(s) => Some(s.log.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            damaged(oldest, "its first record is not a genesis or rotation record, and no seal names the log")
        })?;
    let first_seq = first.map_or(last.seq, |r| r.seq);
    match seal {
        SealState::Sealed(s) if s.log != log_id => {
            gaps.push(format!("the seal {} belongs to log {}, not this one", seal_path.display(), s.log))
        }
        SealState::Sealed(s) if s.seq > last.seq => gaps.push(format!(
            "the log ended at record {} when reopened, but was sealed at record {} on {}: records {}..={} are missing",
            last.seq,
            s.seq,
            s.time,
            last.seq + 1,
            s.seq
        )),
        SealState::Sealed(_) => {}
        SealState::Missing => {
            gaps.push(format!("the seal {} was missing when the log was reopened", seal_path.display()))
        }
        SealState::Forged => {
            gaps.push(format!("the seal {} did not verify when the log was reopened", seal_path.display()))
        }
    }
    let gap = (!gaps.is_empty()).then(|| gaps.join("; "));
    Ok(Some(Resumed { log_id, first_seq, seq: last.seq, prev: last.hash, gap }))
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
/// group the file is `0600`.
fn share_with_group(file: &File, path: &Path, gid: Option<u32>) -> Result<()> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let io = |e| Error::io(format!("cannot set the owner and mode of the audit log {}", path.display()), e);
    match gid {
        Some(gid) => {
            std::os::unix::fs::fchown(file, None, Some(gid)).map_err(io)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o640)).map_err(io)
        }
        None if file.metadata().map_err(io)?.permissions().mode() & 0o077 == 0o040 => {
            // A group removed from the configuration: private again.
            file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)
        }
        None => Ok(()),
    }
}
