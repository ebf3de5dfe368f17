//! Large values as files beside the database: `blobs/<id>` with a unique,
//! never reused id. A blob is written and fsynced before the record that
//! names it commits, so a committed record never points at a torn file; a
//! blob no record names (a write cut short by a crash) is removed at open.
//!
//! A blob is mapped into memory for large reads only while nobody changes
//! it in place: [`Mappings`] counts the live mappings of each blob, and a
//! patch may change a blob in place only when it has none (it then copies
//! the blob instead); from then on that blob is read, never mapped.

use bytes::Bytes;
use std::collections::HashMap;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Debug)]
pub(super) struct BlobDir {
    dir: PathBuf,
    next_id: AtomicU64,
    /// Which blobs are mapped, and which changed in place.
    pub mappings: Arc<Mappings>,
}

impl BlobDir {
    /// Opens `dir`, removing every blob not in `referenced`.
    pub fn open(dir: PathBuf, referenced: &HashSet<u64>) -> io::Result<Self> {
        crate::private_files::create_dir_private(&dir)?;
        let mut max_id = referenced.iter().copied().max().unwrap_or(0);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let id = name.to_str().and_then(|n| u64::from_str_radix(n, 16).ok());
            match id {
                Some(id) if referenced.contains(&id) => {}
                Some(id) => {
                    max_id = max_id.max(id);
                    fs::remove_file(entry.path())?;
                }
                None => {
                    tracing::warn!(path = %entry.path().display(), "stray file in the blob directory left alone");
                }
            }
        }
        Ok(BlobDir { dir, next_id: AtomicU64::new(max_id + 1), mappings: Arc::default() })
    }

    pub fn allocate(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}"))
    }

    pub fn create(&self, id: u64) -> io::Result<File> {
        crate::private_files::create_private(&self.path(id))
    }

    /// Makes the directory entries of newly created blobs durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Removes a blob no longer referenced; a failure only leaves garbage
    /// that the next open collects.
    pub fn remove(&self, id: u64) {
        self.mappings.forget(id);
        if let Err(e) = fs::remove_file(self.path(id)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(id, error = %e, "could not remove an unreferenced blob; it will be collected at next open");
            }
        }
    }
}

/// Reads `len` bytes at `pos` of a blob into a new buffer, without first
/// zero-filling it. Moves the file's cursor: give each reader its own file.
pub(super) fn read_at(mut file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob file is shorter than its record says",
        ));
    }
    Ok(buf)
}

/// The blobs mapped into memory now, and those changed in place.
#[derive(Debug, Default)]
pub(super) struct Mappings {
    /// Per blob: live mappings, and whether it is changed in place.
    blobs: Mutex<HashMap<u64, (usize, bool)>>,
}

impl Mappings {
    /// Registers a mapping of blob `id` about to be made; `None` when the
    /// blob is changed in place (read it instead of mapping it).
    pub fn enter(self: &Arc<Self>, id: u64) -> Option<MapGuard> {
        let mut blobs = self.blobs.lock();
        let entry = blobs.entry(id).or_insert((0, false));
        if entry.1 {
            return None;
        }
        entry.0 += 1;
        Some(MapGuard { mappings: self.clone(), id })
    }

    /// Lets blob `id` be changed in place from now on (it is never mapped
    /// again); `false` while a mapping of it is alive.
    pub fn make_in_place(&self, id: u64) -> bool {
        let mut blobs = self.blobs.lock();
        let entry = blobs.entry(id).or_insert((0, false));
        if entry.0 > 0 {
            return false;
        }
        entry.1 = true;
        true
    }

    /// Forgets a removed blob.
    pub fn forget(&self, id: u64) {
        self.blobs.lock().remove(&id);
    }
}

/// A live mapping of one blob, counted in [`Mappings`] until dropped.
#[derive(Debug)]
pub(super) struct MapGuard {
    mappings: Arc<Mappings>,
    id: u64,
}

impl Drop for MapGuard {
    fn drop(&mut self) {
        let mut blobs = self.mappings.blobs.lock();
        if let Some(entry) = blobs.get_mut(&self.id) {
            entry.0 = entry.0.saturating_sub(1);
            if *entry == (0, false) {
                blobs.remove(&self.id);
            }
        }
    }
}

/// Mapped bytes of a blob, with the guard that keeps it from being
/// changed in place while they live.
struct Mapped {
    map: memmap2::Mmap,
    _guard: MapGuard,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Maps a whole blob of `len` bytes into memory as [`Bytes`], without
/// copying: its pages are the page cache's, faulted in up front. Sound
/// because the guard keeps the blob from being changed in place while the
/// mapping lives, and an overwrite writes a new blob and unlinks the old
/// one, which leaves existing mappings whole. A blob found shorter than
/// its record (damaged from outside) is refused rather than mapped.
pub(super) fn map(file: &File, len: u64, guard: MapGuard) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if file.metadata()?.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob file is shorter than its record says",
        ));
    }
    // SAFETY: `guard` keeps the blob from being written in place, and no
    // blob is ever truncated in place, so the mapped bytes cannot change.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).populate().map(file)? };
    Ok(Bytes::from_owner(Mapped { map, _guard: guard }))
}

/// Reads a whole blob of `len` bytes into a new buffer (a blob changed
/// in place, which is never mapped).
pub(super) fn read_all(file: &File, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("the value does not fit in memory"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(Bytes::from(buf))
}

/// Ranges at least this long are mapped ([`map_range`]) rather than read
/// into a new buffer ([`read_at`]).
pub(super) const MAP_RANGE_MIN: usize = 1 << 20;

/// Maps `len` bytes at `pos` of a blob as [`Bytes`], sound for the reasons
/// given at [`map`]. The range is read in with one large read-ahead
/// (`MADV_WILLNEED`) and faulted in before returning
/// (`MADV_POPULATE_READ`, Linux 5.14; older kernels fault the pages in as
/// they are read). Against [`read_at`] this saves a copy and the zero-fill
/// of a fresh buffer's pages: the caller's reader copies from the page
/// cache directly.
pub(super) fn map_range(file: &File, pos: u64, len: usize, guard: MapGuard) -> io::Result<Bytes> {
    if file.metadata()?.len() < pos + len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob file is shorter than its record says",
        ));
    }
    // SAFETY: as in `map`: the guard keeps the blob from changing.
    let map = unsafe { memmap2::MmapOptions::new().offset(pos).len(len).map(file)? };
    let _ = map.advise(memmap2::Advice::WillNeed);
    let _ = map.advise(memmap2::Advice::PopulateRead);
    Ok(Bytes::from_owner(Mapped { map, _guard: guard }))
}

/// Pieces in which [`write_at`] writes and starts writeback.
const WRITEBACK_PIECE: usize = 8 << 20;

/// Writes `data` at `offset` of a blob being created, and starts the
/// kernel's writeback of each 8 MiB piece as soon as it is written
/// (`sync_file_range`, which does not wait), so that the disk works while
/// the next piece is copied and the `fsync` that publishes the blob finds
/// little left to do.
pub(super) fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    for (i, piece) in data.chunks(WRITEBACK_PIECE).enumerate() {
        let at = offset + (i * WRITEBACK_PIECE) as u64;
        file.write_all_at(piece, at)?;
        start_writeback(file, at, piece.len());
    }
    Ok(())
}

/// Asks the kernel to start writing a range back; only a hint (its failure
/// shows up at the `fsync` that follows).
fn start_writeback(file: &File, offset: u64, len: usize) {
    // SAFETY: a plain system call on a descriptor we own; no memory passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}
