//! `appendlog`: a TierFS backend plugin keeping every value in one
//! append-only file.
//!
//! Every change is a *group* of records (put, delete, rename) appended with
//! one checksummed header and made durable with `fsync` before it is
//! acknowledged; a batch is one group, written with a single `write`, so it
//! is all there or not at all. At open, an in-memory index (key -> offset of
//! the value) is rebuilt by scanning the file; a group torn by a crash at
//! the end is ignored and cut off. The format is in [`format`](mod@crate::format).
//!
//! Settings:
//!
//! ```toml
//! [backends.log]
//! type = "appendlog"
//! path = "data/tierfs.log"   # required; relative to the configuration file
//! ```
//!
//! Capabilities: atomic batch, range read, persistent; also rename and
//! conditional put (checked under the append lock) and streaming (streamed
//! writes spill to a file beside the log past 1 MiB).
//!
//! Limits: the log is never compacted, so overwritten and deleted values
//! keep their space; keys and metadata of live values are held in memory.
//! On a full device an append fails with `OUT_OF_SPACE` and is cut off
//! again; reads go on, and appends work once space is freed on the device
//! (a delete appends a record too, so it frees nothing).
//! One backend at a time may open a log (an advisory `flock`).
#![deny(missing_docs)]

mod crc;
pub mod format;
mod log;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use tierfs_plugin_api::{
    export_plugin, BatchOp, Capabilities, CreateContext, ListPage, ListPageBuilder, ListRequest, Metadata,
    MetadataChanges, ObjectStat, PluginBackend, PluginError, PluginResult, PluginWriter, Settings,
};

use crate::format::Op;
use crate::log::Values;
pub use crate::log::{Committed, Entry, Index, Log};

export_plugin!(AppendLog, "appendlog");

/// The settings fields an `appendlog` backend accepts.
pub const SETTINGS: &[&str] = &["path"];

/// An `appendlog` backend: one [`Log`].
#[derive(Debug)]
pub struct AppendLog {
    log: Arc<Log>,
}

impl AppendLog {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: impl Into<PathBuf>) -> PluginResult<Self> {
        Ok(AppendLog { log: Arc::new(Log::open(&path.into())?) })
    }

    /// The log behind this backend.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// `AlreadyExists` if `if_not_exists` and `key` is live.
    fn refuse_existing(index: &Index, key: &str, if_not_exists: bool) -> PluginResult<()> {
        if if_not_exists && index.contains_key(key) {
            return Err(PluginError::already_exists().with_key(key));
        }
        Ok(())
    }

    /// The stat of a value a put just committed.
    fn stat_of(committed: Option<Committed>, size: u64, metadata: Metadata) -> PluginResult<ObjectStat> {
        let c = committed.ok_or_else(|| PluginError::unavailable("the put was not written"))?;
        Ok(ObjectStat {
            size,
            modified: ObjectStat::time_from_nanos(c.modified_nanos),
            version: c.seq.to_string(),
            metadata,
        })
    }
}

impl PluginBackend for AppendLog {
    fn create(settings: &Settings, context: &CreateContext) -> PluginResult<Self> {
        settings.expect_only(SETTINGS)?;
        let path = settings.required_str("path")?;
        if path.is_empty() {
            return Err(PluginError::config("field `path` is empty; give the file that holds the log"));
        }
        let path = context.resolve_path(path.as_ref());
        if path.is_dir() {
            return Err(PluginError::config(format!(
                "field `path`: {} is a directory; give a file name inside it, such as `tierfs.log`",
                path.display()
            )));
        }
        AppendLog::open(path)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batch: true,
            range_read: true,
            rename: true,
            persistent: true,
            shared: false,
            conditional_put: true,
            streaming: true,
        }
    }

    fn get(&self, key: &str) -> PluginResult<Vec<u8>> {
        let entry = self.log.entry(key)?;
        let value = self.log.read_at(entry.offset, entry.size)?;
        if format::value_crc(&value) != entry.crc {
            return Err(PluginError::unavailable(format!(
                "the value is damaged in the log {} (checksum mismatch); restore the log from a backup",
                self.log.path().display()
            )));
        }
        Ok(value)
    }

    fn get_range(&self, key: &str, start: u64, end: u64) -> PluginResult<(Vec<u8>, ObjectStat)> {
        let entry = self.log.entry(key)?;
        let end = end.min(entry.size);
        let start = start.min(end);
        let value = self.log.read_at(entry.offset + start, end - start)?;
        Ok((value, entry.stat()))
    }

    fn put(
        &self,
        key: &str,
        value: &[u8],
        metadata: Metadata,
        if_not_exists: bool,
    ) -> PluginResult<ObjectStat> {
        let op = Op::Put {
            key,
            metadata: metadata.clone(),
            len: value.len() as u64,
            crc: format::value_crc(value),
        };
        let committed = self.log.commit(vec![op], Values::Memory(vec![value]), |index| {
            Self::refuse_existing(index, key, if_not_exists)?;
            Ok(true)
        })?;
        Self::stat_of(committed, value.len() as u64, metadata)
    }

    fn delete(&self, key: &str) -> PluginResult<()> {
        // A missing key needs no record.
        self.log.commit(vec![Op::Delete { key }], Values::Memory(Vec::new()), |index| {
            Ok(index.contains_key(key))
        })?;
        Ok(())
    }

    fn stat(&self, key: &str) -> PluginResult<ObjectStat> {
        Ok(self.log.entry(key)?.stat())
    }

    fn list(&self, request: &ListRequest) -> PluginResult<ListPage> {
        let index = self.log.index()?;
        let mut page = ListPageBuilder::new(request);
        for (key, entry) in index.range::<String, _>((request.start_bound(), std::ops::Bound::Unbounded)) {
            if !page.push(key, || Ok(entry.stat()))? {
                break;
            }
        }
        Ok(page.finish())
    }

    fn batch(&self, ops: Vec<BatchOp<'_>>) -> PluginResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut log_ops = Vec::with_capacity(ops.len());
        let mut values = Vec::new();
        let mut conditional = Vec::new();
        for op in &ops {
            match op {
                BatchOp::Put { key, value, metadata, if_not_exists } => {
                    let len = value.len() as u64;
                    log_ops.push(Op::Put {
                        key,
                        metadata: metadata.clone(),
                        len,
                        crc: format::value_crc(value),
                    });
                    values.push(*value);
                    if *if_not_exists {
                        conditional.push(key.as_str());
                    }
                }
                BatchOp::Delete { key } => log_ops.push(Op::Delete { key }),
            }
        }
        self.log.commit(log_ops, Values::Memory(values), |index| {
            match conditional.iter().find(|key| index.contains_key(**key)) {
                Some(key) => Err(PluginError::already_exists().with_key(*key)),
                None => Ok(true),
            }
        })?;
        Ok(())
    }

    fn begin_write(
        this: &Arc<Self>,
        key: &str,
        metadata: Metadata,
        if_not_exists: bool,
    ) -> PluginResult<Box<dyn PluginWriter>> {
        Ok(Box::new(writer::SpillWriter::new(this.log.clone(), key, metadata, if_not_exists)))
    }

    /// One small record with the new map; the value stays where it is.
    fn set_metadata(
        &self,
        key: &str,
        changes: &MetadataChanges,
        if_version: Option<&str>,
    ) -> PluginResult<ObjectStat> {
        loop {
            let entry = self.log.entry(key).map_err(|e| e.with_key(key))?;
            if let Some(version) = if_version {
                if entry.seq.to_string() != version {
                    return Err(PluginError::conflict(format!(
                        "the value's version is {}, the update asked for {version}",
                        entry.seq
                    ))
                    .with_key(key));
                }
            }
            let mut metadata = entry.metadata.clone();
            changes.apply(&mut metadata);
            let op = Op::Metadata { key, metadata: metadata.clone() };
            // Under the log's write lock: applied only to the entry read
            // above; a write in between makes it start again.
            let committed =
                self.log.commit(vec![op], Values::Memory(Vec::new()), |index| match index.get(key) {
                    None => Err(PluginError::not_found().with_key(key)),
                    Some(now) => Ok(now.seq == entry.seq),
                })?;
            if let Some(c) = committed {
                return Ok(ObjectStat {
                    size: entry.size,
                    modified: ObjectStat::time_from_nanos(entry.modified_nanos),
                    version: c.seq.to_string(),
                    metadata,
                });
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> PluginResult<()> {
        self.log.commit(vec![Op::Rename { from, to }], Values::Memory(Vec::new()), |index| {
            match index.contains_key(from) {
                true => Ok(true),
                false => Err(PluginError::not_found().with_key(from)),
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn put(log: &AppendLog, key: &str, value: &[u8]) -> ObjectStat {
        log.put(key, value, Metadata::new(), false).unwrap()
    }

    fn file_len(log: &AppendLog) -> u64 {
        std::fs::metadata(log.log().path()).unwrap().len()
    }

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.log");
        let mut meta = Metadata::new();
        meta.insert("mode".into(), "644".into());
        {
            let log = AppendLog::open(&path).unwrap();
            log.put("a/1", b"one", meta.clone(), false).unwrap();
            put(&log, "a/2", b"two");
            put(&log, "a/2", b"two again");
            log.delete("a/1").unwrap();
            log.put("a/1", b"one again", meta.clone(), false).unwrap();
            log.rename("a/2", "b").unwrap();
            let ops = vec![
                BatchOp::Put {
                    key: "c".into(),
                    value: b"see",
                    metadata: Metadata::new(),
                    if_not_exists: false,
                },
                BatchOp::Delete { key: "a/1".into() },
            ];
            log.batch(ops).unwrap();
        }
        // The log and its new directory are private to the daemon's user.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let log = AppendLog::open(&path).unwrap();
        assert_eq!(log.log().recovered_bytes(), 0);
        assert_eq!(log.get("b").unwrap(), b"two again");
        assert_eq!(log.get("c").unwrap(), b"see");
        assert_eq!(log.get("a/1").unwrap_err().kind(), tierfs_plugin_api::PluginErrorKind::NotFound);
        assert_eq!(log.get("a/2").unwrap_err().kind(), tierfs_plugin_api::PluginErrorKind::NotFound);
        let stat = log.stat("b").unwrap();
        assert_eq!(stat.size, 9);
        // New groups continue the sequence, so versions never repeat.
        let next = put(&log, "d", b"d");
        assert!(next.version.parse::<u64>().unwrap() > stat.version.parse::<u64>().unwrap());
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let (intact_end, full_len) = {
            let log = AppendLog::open(&path).unwrap();
            put(&log, "k1", b"first");
            put(&log, "k2", &[7u8; 10_000]);
            let intact_end = file_len(&log);
            put(&log, "k3", &[9u8; 5000]);
            (intact_end, file_len(&log))
        };
        // Cut the last group at every kind of place: header, head, value.
        for cut in [intact_end + 3, intact_end + 20, intact_end + 60, full_len - 1] {
            let copy = dir.path().join(format!("cut-{cut}.log"));
            std::fs::copy(&path, &copy).unwrap();
            OpenOptions::new().write(true).open(&copy).unwrap().set_len(cut).unwrap();
            let log = AppendLog::open(&copy).unwrap();
            assert_eq!(log.log().recovered_bytes(), cut - intact_end, "cut at {cut}");
            assert_eq!(file_len(&log), intact_end, "cut at {cut}");
            assert_eq!(log.get("k1").unwrap(), b"first");
            assert_eq!(log.get("k2").unwrap(), vec![7u8; 10_000]);
            assert!(log.get("k3").is_err());
            // The log goes on where the whole records end.
            put(&log, "k4", b"after");
            drop(log);
            let log = AppendLog::open(&copy).unwrap();
            assert_eq!(log.log().recovered_bytes(), 0);
            assert_eq!(log.get("k4").unwrap(), b"after");
            assert_eq!(log.get("k1").unwrap(), b"first");
        }
    }

    #[test]
    fn torn_value_bytes_and_zero_fill_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let intact_end = {
            let log = AppendLog::open(&path).unwrap();
            put(&log, "k1", b"first");
            let end = file_len(&log);
            put(&log, "k2", &[5u8; 4096]);
            end
        };
        // The last value's bytes never reached the disk: zeros instead.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 100], len - 100).unwrap();
        // And the file was extended by unwritten space.
        file.set_len(len + 8192).unwrap();
        drop(file);
        let log = AppendLog::open(&path).unwrap();
        assert_eq!(file_len(&log), intact_end);
        assert_eq!(log.get("k1").unwrap(), b"first");
        assert!(log.stat("k2").is_err());
    }

    #[test]
    fn damage_before_the_end_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let second = {
            let log = AppendLog::open(&path).unwrap();
            put(&log, "k1", b"first");
            let second = file_len(&log);
            put(&log, "k2", b"second");
            put(&log, "k3", b"third");
            second
        };
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"X", second + 20).unwrap();
        drop(file);
        let e = AppendLog::open(&path).unwrap_err();
        assert!(e.message().contains(&format!("damaged at byte {second}")), "{e}");
        assert!(e.message().contains(&format!("truncate -s {second}")), "{e}");
    }

    #[test]
    fn one_backend_per_log_and_foreign_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = AppendLog::open(&path).unwrap();
        let e = AppendLog::open(&path).unwrap_err();
        assert!(e.message().contains("already open"), "{e}");
        drop(log);
        AppendLog::open(&path).unwrap();

        let foreign = dir.path().join("notes.txt");
        std::fs::write(&foreign, "dear diary, today I").unwrap();
        let e = AppendLog::open(&foreign).unwrap_err();
        assert_eq!(e.kind(), tierfs_plugin_api::PluginErrorKind::Config);
        assert!(e.message().contains("is not an appendlog log"), "{e}");
    }

    #[test]
    fn batch_with_existing_conditional_key_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = AppendLog::open(dir.path().join("t.log")).unwrap();
        put(&log, "exists", b"old");
        let before = file_len(&log);
        let ops = vec![
            BatchOp::Put { key: "new".into(), value: b"n", metadata: Metadata::new(), if_not_exists: false },
            BatchOp::Put {
                key: "exists".into(),
                value: b"x",
                metadata: Metadata::new(),
                if_not_exists: true,
            },
        ];
        let e = log.batch(ops).unwrap_err();
        assert_eq!(e.kind(), tierfs_plugin_api::PluginErrorKind::AlreadyExists);
        assert_eq!(e.key(), Some("exists"));
        assert_eq!(file_len(&log), before);
        assert!(log.get("new").is_err());
    }

    #[test]
    fn streamed_writes_spill_and_abort_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AppendLog::open(dir.path().join("t.log")).unwrap());
        let value: Vec<u8> = (0..3 * writer::SPILL_AT + 11).map(|i| (i % 251) as u8).collect();
        let mut w = AppendLog::begin_write(&log, "big", Metadata::new(), false).unwrap();
        for chunk in value.chunks(64 * 1024) {
            w.write(chunk).unwrap();
        }
        assert_eq!(w.finish().unwrap().size, value.len() as u64);
        assert_eq!(log.get("big").unwrap(), value);

        let mut w = AppendLog::begin_write(&log, "big", Metadata::new(), false).unwrap();
        w.write(&value).unwrap();
        w.abort().unwrap();
        assert_eq!(log.get("big").unwrap(), value);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".spill-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn settings_are_checked() {
        let ctx = CreateContext { name: "log".into(), base_dir: None };
        let e = AppendLog::create(&Settings::parse(br#"{"path":"x","pth":"y"}"#).unwrap(), &ctx).unwrap_err();
        assert_eq!(e.message(), "unknown field `pth`, expected `path`");
        let e = AppendLog::create(&Settings::parse(b"{}").unwrap(), &ctx).unwrap_err();
        assert_eq!(e.message(), "missing field `path`");
        let e = AppendLog::create(&Settings::parse(br#"{"path":3}"#).unwrap(), &ctx).unwrap_err();
        assert_eq!(e.message(), "field `path` must be a string, not an integer");

        let dir = tempfile::tempdir().unwrap();
        let ctx = CreateContext { name: "log".into(), base_dir: Some(dir.path().to_owned()) };
        let log = AppendLog::create(&Settings::parse(br#"{"path":"rel/t.log"}"#).unwrap(), &ctx).unwrap();
        assert_eq!(log.log().path(), dir.path().join("rel/t.log"));
    }
}
