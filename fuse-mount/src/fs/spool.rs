//! Spools: the local copy of a file being written.
//!
//! A spool starts in memory and moves to an anonymous file in the spool
//! directory (`O_TMPFILE`, so nothing is left behind even after a crash)
//! once it grows past [`SpoolDir::memory_limit`] bytes, or once all memory
//! spools together would pass the budget given to [`SpoolDir::new`]. Random writes,
//! holes and truncation work on both forms.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// Where spool files go and how much memory spools may use.
#[derive(Debug)]
pub struct SpoolDir {
    dir: PathBuf,
    memory_limit: usize,
    memory_budget: usize,
    in_memory: AtomicUsize,
}

impl SpoolDir {
    /// Spools in `dir`, kept in memory up to `memory_limit` bytes each and
    /// `memory_budget` bytes together.
    pub fn new(dir: &Path, memory_limit: usize, memory_budget: usize) -> io::Result<Arc<Self>> {
        // Created private (0700) when missing; spool files are anonymous and 0600.
        tierfs_core::private_files::create_dir_private(dir)?;
        // Fail now, not at the first large write, if the directory is unusable.
        drop(tempfile::tempfile_in(dir)?);
        Ok(Arc::new(SpoolDir {
            dir: dir.to_owned(),
            memory_limit,
            memory_budget,
            in_memory: AtomicUsize::new(0),
        }))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Largest spool kept in memory.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// Bytes held by memory spools now.
    pub fn in_memory(&self) -> usize {
        self.in_memory.load(Ordering::Relaxed)
    }

    /// Reserves `n` more bytes of memory, if the budget allows.
    fn reserve(&self, n: usize) -> bool {
        let mut cur = self.in_memory.load(Ordering::Relaxed);
        loop {
            if cur + n > self.memory_budget {
                return false;
            }
            match self.in_memory.compare_exchange_weak(cur, cur + n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, n: usize) {
        self.in_memory.fetch_sub(n, Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum Data {
    /// Bytes in memory; `reserved` of them counted against the budget.
    Memory { buf: Vec<u8>, reserved: usize },
    /// An anonymous file.
    File(File),
}

/// One file's local copy.
#[derive(Debug)]
pub struct Spool {
    dir: Arc<SpoolDir>,
    data: Data,
    len: u64,
}

impl Spool {
    /// An empty spool.
    pub fn new(dir: &Arc<SpoolDir>) -> Self {
        Spool { dir: dir.clone(), data: Data::Memory { buf: Vec::new(), reserved: 0 }, len: 0 }
    }

    /// A spool holding `bytes`.
    pub fn from_bytes(dir: &Arc<SpoolDir>, bytes: &[u8]) -> io::Result<Self> {
        let mut spool = Spool::new(dir);
        spool.write_at(0, bytes)?;
        Ok(spool)
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the spool is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes are in memory (small enough to travel whole).
    pub fn in_memory(&self) -> bool {
        matches!(self.data, Data::Memory { .. })
    }

    /// Up to `size` bytes from `offset` (fewer at the end).
    pub fn read_at(&self, offset: u64, size: usize) -> io::Result<Bytes> {
        if offset >= self.len {
            return Ok(Bytes::new());
        }
        let end = (offset + size as u64).min(self.len);
        let n = (end - offset) as usize;
        match &self.data {
            Data::Memory { buf, .. } => {
                let start = offset as usize;
                // Bytes past `buf` (a hole made by truncate) read as zeros.
                let mut out = vec![0; n];
                if start < buf.len() {
                    let avail = (buf.len() - start).min(n);
                    out[..avail].copy_from_slice(&buf[start..start + avail]);
                }
                Ok(Bytes::from(out))
            }
            Data::File(file) => {
                let mut out = vec![0; n];
                let mut done = 0;
                while done < n {
                    let got = file.read_at(&mut out[done..], offset + done as u64)?;
                    if got == 0 {
                        break; // a hole at the end reads as zeros
                    }
                    done += got;
                }
                Ok(Bytes::from(out))
            }
        }
    }

    /// Writes `data` at `offset`, growing the spool (a gap reads as zeros).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        if let Data::Memory { buf, reserved } = &mut self.data {
            let new_len = end.max(buf.len() as u64);
            let fits = new_len <= self.dir.memory_limit as u64 && {
                let grow = (new_len as usize).saturating_sub(*reserved);
                grow == 0
                    || self.dir.reserve(grow) && {
                        *reserved += grow;
                        true
                    }
            };
            if fits {
                if buf.len() < end as usize {
                    buf.resize(end as usize, 0);
                }
                buf[offset as usize..end as usize].copy_from_slice(data);
                self.len = self.len.max(end);
                return Ok(());
            }
            self.spill()?;
        }
        if let Data::File(file) = &self.data {
            file.write_all_at(data, offset)?;
            if end > self.len {
                self.len = end;
            }
        }
        Ok(())
    }

    /// Cuts or extends the spool to `len` bytes (new bytes read as zeros).
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        match &mut self.data {
            Data::Memory { buf, .. } if len <= buf.len() as u64 => buf.truncate(len as usize),
            Data::Memory { .. } if len <= self.dir.memory_limit as u64 => {}
            Data::Memory { .. } => {
                self.spill()?;
                if let Data::File(file) = &self.data {
                    file.set_len(len)?;
                }
            }
            Data::File(file) => file.set_len(len)?,
        }
        // Memory spools keep `buf` no longer than `len`; reads past `buf` are zeros.
        self.len = len;
        Ok(())
    }

    /// The whole content, when it is in memory.
    pub fn to_bytes(&self) -> Option<Bytes> {
        match &self.data {
            Data::Memory { buf, .. } => {
                let mut out = buf.clone();
                out.resize(self.len as usize, 0);
                Some(Bytes::from(out))
            }
            Data::File(_) => None,
        }
    }

    /// Moves the bytes to an anonymous file.
    fn spill(&mut self) -> io::Result<()> {
        if let Data::Memory { buf, reserved } = &mut self.data {
            let file = tempfile::tempfile_in(&self.dir.dir)?;
            file.write_all_at(buf, 0)?;
            file.set_len(self.len)?;
            self.dir.release(*reserved);
            self.data = Data::File(file);
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Data::Memory { reserved, .. } = &self.data {
            self.dir.release(*reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(limit: usize, budget: usize) -> (tempfile::TempDir, Arc<SpoolDir>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SpoolDir::new(tmp.path(), limit, budget).unwrap();
        (tmp, dir)
    }

    #[test]
    fn random_writes_holes_and_truncation() {
        for limit in [0, 16, 1 << 20] {
            let (_tmp, d) = dir(limit, 1 << 20);
            let mut s = Spool::new(&d);
            s.write_at(10, b"hello").unwrap();
            assert_eq!(s.len(), 15);
            assert_eq!(&s.read_at(8, 100).unwrap()[..], b"\0\0hello");
            s.write_at(0, b"ab").unwrap();
            s.set_len(12).unwrap();
            assert_eq!(&s.read_at(0, 100).unwrap()[..], b"ab\0\0\0\0\0\0\0\0he");
            s.set_len(14).unwrap();
            assert_eq!(&s.read_at(10, 100).unwrap()[..], b"he\0\0");
            s.write_at(40, b"z").unwrap();
            assert_eq!(s.len(), 41);
            assert_eq!(s.read_at(13, 27).unwrap(), Bytes::from(vec![0; 27]));
            assert_eq!(s.in_memory(), limit >= 41, "limit {limit}");
            assert!(s.read_at(41, 10).unwrap().is_empty());
        }
    }

    #[test]
    fn memory_is_budgeted_and_returned() {
        let (_tmp, d) = dir(100, 150);
        let mut a = Spool::new(&d);
        a.write_at(0, &[1; 100]).unwrap();
        let mut b = Spool::new(&d);
        b.write_at(0, &[2; 100]).unwrap();
        assert!(a.in_memory());
        assert!(!b.in_memory(), "over the budget: spilled");
        assert_eq!(d.in_memory(), 100);
        assert_eq!(b.to_bytes(), None);
        assert_eq!(a.to_bytes().unwrap().len(), 100);
        drop(a);
        assert_eq!(d.in_memory(), 0);
        assert_eq!(&b.read_at(98, 5).unwrap()[..], &[2, 2]);
    }
}
