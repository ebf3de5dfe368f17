//! Streamed writes: chunks collect in memory up to [`SPILL_AT`] bytes, then
//! in a spill file beside the log, so memory stays bounded whatever the
//! value's size. `finish` copies the value into one group of the log.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use tierfs_plugin_api::{Metadata, ObjectStat, PluginError, PluginResult, PluginWriter};

use crate::crc::Crc32;
use crate::format::Op;
use crate::log::{Log, Values};
use crate::AppendLog;

/// Values larger than this go through a spill file.
pub const SPILL_AT: usize = 1 << 20;

/// A streamed write in progress.
pub struct SpillWriter {
    log: Arc<Log>,
    key: String,
    metadata: Metadata,
    if_not_exists: bool,
    buf: Vec<u8>,
    spill: Option<(PathBuf, File)>,
    len: u64,
    crc: Crc32,
}

impl SpillWriter {
    /// A writer of `key` into `log`.
    pub fn new(log: Arc<Log>, key: &str, metadata: Metadata, if_not_exists: bool) -> Self {
        SpillWriter {
            log,
            key: key.to_owned(),
            metadata,
            if_not_exists,
            buf: Vec::new(),
            spill: None,
            len: 0,
            crc: Crc32::new(),
        }
    }

    fn spill_error(&self, e: std::io::Error) -> PluginError {
        let path = self.spill.as_ref().map(|(p, _)| p.display().to_string()).unwrap_or_default();
        PluginError::io(&format!("cannot write the spill file {path} of a streamed write"), e)
            .with_key(&self.key)
    }

    /// Moves the buffered bytes to the spill file, creating it first if needed.
    fn spill(&mut self) -> PluginResult<()> {
        if self.spill.is_none() {
            let path = self.log.spill_path();
            let file =
                OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path).map_err(
                    |e| PluginError::io(&format!("cannot create the spill file {}", path.display()), e),
                )?;
            self.spill = Some((path, file));
        }
        let at = self.len - self.buf.len() as u64;
        if let Some((_, file)) = &self.spill {
            if let Err(e) = file.write_all_at(&self.buf, at) {
                return Err(self.spill_error(e));
            }
        }
        self.buf.clear();
        Ok(())
    }

    fn remove_spill(&mut self) {
        if let Some((path, file)) = self.spill.take() {
            drop(file);
            // Best effort: a leftover is removed when the log is next opened.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl PluginWriter for SpillWriter {
    fn write(&mut self, chunk: &[u8]) -> PluginResult<()> {
        self.crc.update(chunk);
        self.buf.extend_from_slice(chunk);
        self.len += chunk.len() as u64;
        if self.buf.len() >= SPILL_AT {
            self.spill()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> PluginResult<ObjectStat> {
        if self.spill.is_some() && !self.buf.is_empty() {
            self.spill()?;
        }
        let op = Op::Put {
            key: &self.key,
            metadata: self.metadata.clone(),
            len: self.len,
            crc: self.crc.finish(),
        };
        let values = match &self.spill {
            Some((_, file)) => Values::Spill { file, len: self.len },
            None => Values::Memory(vec![&self.buf]),
        };
        let committed = self.log.commit(vec![op], values, |index| {
            AppendLog::refuse_existing(index, &self.key, self.if_not_exists)?;
            Ok(true)
        });
        let stat = committed.and_then(|c| AppendLog::stat_of(c, self.len, self.metadata.clone()));
        self.remove_spill();
        stat.map_err(|e| e.with_key(&self.key))
    }

    fn abort(mut self: Box<Self>) -> PluginResult<()> {
        self.remove_spill();
        Ok(())
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        self.remove_spill();
    }
}
