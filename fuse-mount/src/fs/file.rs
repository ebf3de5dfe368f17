//! Open files: one shared state per inode, one handle per `open`.
//!
//! Every handle of an inode shares its [`OpenFile`], so two processes with
//! the file open see one content. The content is `Clean` (the store has
//! it; reads are ranged reads with read-ahead) until the first write or
//! truncation. A small file is then copied into a [`Spool`]; from then on
//! reads and writes go to the spool, and a commit (on `fsync`, and when the
//! last handle is released) writes the spool to the store. A large file
//! keeps only its changed ranges (`Patched`, an [`Overlay`]), committed as
//! one `Storage::patch`. Attribute changes of an open file are kept here
//! and written with the next commit.
//!
//! Each uncommitted change belongs to one principal, the *writer*: the
//! file's content and attributes differ from the store only by changes of
//! that principal, and are committed as it. Before another principal reads,
//! writes or changes the file, [`FileState::hand_over`] commits the
//! writer's changes as the writer; if they are refused (its rights were
//! narrowed), they are discarded, the file goes back to what the store
//! holds, and the refusal waits for the writer's next write, `fsync` or
//! close. So refused bytes are never published nor served to anyone else,
//! and one principal's refusal never costs another its change.
//!
//! A file written from empty strictly sequentially (`cp`, `dd`, `tar`)
//! switches, once it outgrows the memory spool, to `Streaming`: the bytes go
//! straight into a store [`ValueWriter`] instead of a spool file, so a large
//! copy is written once, not spooled and copied again. The writer gets the
//! metadata known when it starts, without times: the store's modification
//! time (when the value is published) then serves as mtime and ctime. Any
//! other access (a read, a write elsewhere, a truncation, `fsync`, the last
//! close) first *settles* the stream: the value is published, and if the
//! mode, owner or explicitly set times changed meanwhile, the metadata is
//! written again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tierfs_core::access::Principal;
use tierfs_core::{Key, Metadata, MetadataChanges, ObjectMeta, PutOptions, Session, Storage, ValueWriter};

use super::attr::{self, PosixMeta};
use super::journal::MAX_VALUE;
use super::overlay::Overlay;
use super::spool::{Spool, SpoolDir};
use super::store::Store;
use crate::errno::{FsError, FsResult};

/// What the content of an open file is.
#[derive(Debug)]
pub enum Content {
    /// The store holds it; `size` bytes.
    Clean {
        /// Size in bytes.
        size: u64,
    },
    /// A local copy holds it (and may be ahead of the store).
    Spooled(Spool),
    /// The store holds it but for the changed ranges kept here (a large
    /// file changed in place: committed with `Storage::patch`).
    Patched(Overlay),
    /// Being written sequentially straight into the store.
    Streaming(Stream),
}

/// A sequential write going straight to the store.
pub struct Stream {
    writer: Box<dyn ValueWriter>,
    len: u64,
    /// The metadata the writer will store.
    stored: Metadata,
    /// Overwriting a stored value in order from its start: its length; the
    /// bytes past what was written are copied from it when the stream is
    /// published.
    tail: Option<u64>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Stream {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`.
    pub async fn append(&mut self, data: &[u8]) -> tierfs_core::Result<()> {
        self.writer.write(Bytes::copy_from_slice(data)).await?;
        self.len += data.len() as u64;
        Ok(())
    }
}

/// The mutable state of an open file.
#[derive(Debug)]
pub struct FileState {
    /// Current attributes.
    pub posix: PosixMeta,
    /// The metadata map as stored (entries other than `posix.*` are kept).
    pub metadata: Metadata,
    /// The content.
    pub content: Content,
    /// Whether content or attributes differ from the store.
    pub dirty: bool,
    /// Unlinked while open: never committed again.
    pub unlinked: bool,
    /// The principal whose changes are not yet committed (commits run as it).
    pub writer: Option<Session>,
    /// Changes of a principal refused (or lost) when another's request
    /// committed them: errno and message, reported to that principal's
    /// next write, `fsync` or close.
    pub refused: Vec<(Principal, i32, String)>,
    /// What the store holds, as this file last knew it: the metadata, the
    /// size and the time of the value (what discarded changes go back to).
    pub base: (Metadata, u64, std::time::SystemTime),
    /// Written only at its end since it was empty (may stream).
    pub sequential: bool,
    /// While `sequential`: the length it was extended to (`fallocate`,
    /// `truncate`) past what was written; the bytes between read as zeros
    /// and are written at the commit.
    pub extent: u64,
    /// Times were set explicitly (`utimensat`), so they must be stored.
    pub times_explicit: bool,
}

impl FileState {
    /// A state for a file the store holds.
    pub fn clean(posix: PosixMeta, metadata: Metadata, size: u64) -> Self {
        FileState {
            base: (metadata.clone(), size, posix.mtime),
            posix,
            metadata,
            content: Content::Clean { size },
            dirty: false,
            unlinked: false,
            writer: None,
            refused: Vec::new(),
            sequential: size == 0,
            extent: 0,
            times_explicit: false,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        let written = match &self.content {
            Content::Clean { size } => *size,
            Content::Spooled(spool) => spool.len(),
            Content::Patched(overlay) => overlay.len(),
            Content::Streaming(stream) => stream.len,
        };
        written.max(self.extent)
    }

    /// Sets the size (`truncate`, `fallocate`): a file written in order
    /// from empty stays so when extended (its zeros are written at the
    /// commit, so it still streams); a large stored file extended, or cut
    /// no lower than the store's length, keeps an overlay; anything else is
    /// spooled.
    pub async fn set_size(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        dir: &Arc<SpoolDir>,
        size: u64,
    ) -> FsResult<()> {
        if size == 0 {
            self.truncate_to_zero(dir).await;
            return Ok(());
        }
        let written = match &mut self.content {
            Content::Spooled(spool) if self.sequential => Some(spool.len()),
            Content::Streaming(stream) if size >= stream.len => {
                // Stored bytes past the cut are not copied.
                stream.tail = stream.tail.map(|t| t.min(size));
                Some(stream.len)
            }
            Content::Streaming(stream) => Some(stream.len),
            _ => None,
        };
        if let Some(written) = written {
            if size >= written {
                self.extent = size;
                return Ok(());
            }
        }
        self.settle(store, session, key).await?;
        if let Content::Clean { size: stored } = self.content {
            if stored > MAX_VALUE as u64 && size >= stored {
                self.content = Content::Patched(Overlay::new(dir, stored));
            }
        }
        if let Content::Patched(overlay) = &mut self.content {
            if size >= overlay.base_len() {
                overlay.set_len(size)?;
                return Ok(());
            }
        }
        self.spool(store, session, key, dir).await?.set_len(size)?;
        self.sequential = false;
        Ok(())
    }

    /// Makes the zeros of an extension past the written bytes part of a
    /// spooled content (before a write elsewhere or a commit).
    pub fn fill_extent(&mut self) -> FsResult<()> {
        if let Content::Spooled(spool) = &mut self.content {
            if self.extent > spool.len() {
                spool.set_len(self.extent)?;
            }
        }
        self.extent = 0;
        Ok(())
    }

    /// The content as a spool, copying it in from the store first if needed.
    pub async fn spool(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        dir: &Arc<SpoolDir>,
    ) -> FsResult<&mut Spool> {
        self.settle(store, session, key).await?;
        self.fill_extent()?;
        if let Content::Clean { size } = self.content {
            let spool = copy_in(store, session, key, size, dir).await?;
            self.content = Content::Spooled(spool);
            self.sequential = size == 0;
        }
        if matches!(self.content, Content::Patched(_)) {
            let Content::Patched(overlay) = std::mem::replace(&mut self.content, Content::Clean { size: 0 })
            else {
                unreachable!("matched above")
            };
            let gaps = overlay.unchanged();
            let mut spool = overlay.into_spool()?;
            for gap in gaps {
                fill_from_store(store, session, key, gap, &mut spool).await?;
            }
            self.content = Content::Spooled(spool);
            self.sequential = false;
        }
        match &mut self.content {
            Content::Spooled(spool) => Ok(spool),
            _ => Err(FsError::new(libc::EIO, format!("`{key}` could not be spooled"))),
        }
    }

    /// Replaces the content with an empty spool (truncation to zero); a
    /// stream in progress is abandoned (the store keeps its previous value).
    pub async fn truncate_to_zero(&mut self, dir: &Arc<SpoolDir>) {
        let old = std::mem::replace(&mut self.content, Content::Spooled(Spool::new(dir)));
        self.extent = 0;
        if let Content::Streaming(stream) = old {
            if let Err(e) = stream.writer.abort().await {
                tracing::debug!(error = %e, "abandoning a stream failed");
            }
        }
        self.sequential = true;
    }

    /// Starts streaming: `spool` (in memory, written from empty in order)
    /// and then `data` go to a store writer for `key`.
    pub async fn start_stream(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        data: &[u8],
    ) -> FsResult<()> {
        let Content::Spooled(spool) = &self.content else {
            return Err(FsError::new(libc::EIO, "only a spooled file can start streaming"));
        };
        let head = spool.to_bytes().unwrap_or_default();
        let mut stream = self.open_stream(store, session, key, None).await?;
        if !head.is_empty() {
            stream.append(&head).await?;
        }
        stream.append(data).await?;
        self.content = Content::Streaming(stream);
        self.writer = Some(session.clone());
        Ok(())
    }

    /// Starts streaming over a stored file being overwritten in order from
    /// its start (its overlay holds exactly `0..n`, and `data` goes at
    /// `n`): what the overlay holds and `data` go to a store writer, and the
    /// stored bytes past the end of the writes are copied at the publish.
    /// So a file laid out first (fio preallocates, then writes) and then
    /// written in order is written once, not kept as changes.
    pub async fn overwrite_stream(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        data: &[u8],
    ) -> FsResult<()> {
        let Content::Patched(overlay) = &self.content else {
            return Err(FsError::new(libc::EIO, "only a file with an overlay can be overwritten in order"));
        };
        let (base_len, len) = (overlay.base_len(), overlay.len());
        let mut stream = self.open_stream(store, session, key, Some(base_len)).await?;
        let Content::Patched(overlay) =
            std::mem::replace(&mut self.content, Content::Clean { size: base_len })
        else {
            unreachable!("matched above")
        };
        let head = overlay.changed();
        let spool = overlay.into_spool()?;
        let copied = async {
            let mut pos = 0;
            while pos < head {
                let chunk = spool.read_at(pos, (head - pos).min(1 << 20) as usize)?;
                pos += chunk.len() as u64;
                stream.append(&chunk).await?;
            }
            stream.append(data).await?;
            Ok::<_, FsError>(())
        }
        .await;
        if let Err(e) = copied {
            let _ = stream.writer.abort().await;
            return Err(e);
        }
        self.extent = len;
        self.sequential = true;
        self.content = Content::Streaming(stream);
        self.writer = Some(session.clone());
        Ok(())
    }

    /// A store writer for `key` with the metadata known now (times left to
    /// the store unless set explicitly).
    async fn open_stream(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        tail: Option<u64>,
    ) -> FsResult<Stream> {
        let mut stored = self.metadata.clone();
        self.posix.write_to(&mut stored);
        if !self.times_explicit {
            for name in [attr::ATIME, attr::MTIME, attr::CTIME] {
                stored.remove(name);
            }
        }
        // Queued changes of this key (its creation) must land before the value.
        store.flush().await?;
        let writer = session.write(key, PutOptions::with_metadata(stored.clone())).await?;
        Ok(Stream { writer, len: 0, stored, tail })
    }

    /// Publishes a stream in progress; the content is then `Clean`. If the
    /// attributes changed beyond what the writer stores, the file stays
    /// dirty so the next commit writes the metadata again.
    pub async fn settle(&mut self, store: &Store, session: &Session, key: &Key) -> FsResult<()> {
        if !matches!(self.content, Content::Streaming(_)) {
            return Ok(());
        }
        let Content::Streaming(stream) = std::mem::replace(&mut self.content, Content::Clean { size: 0 })
        else {
            return Ok(());
        };
        let mut stream = stream;
        // The stored bytes past an overwrite in order are copied.
        if let Some(old_len) = stream.tail.filter(|t| *t > stream.len) {
            let end = old_len.min(self.extent.max(stream.len));
            if let Err(e) = copy_tail(store, session, key, &mut stream, end).await {
                let _ = stream.writer.abort().await;
                self.content = Content::Clean { size: self.base.1 };
                self.extent = 0;
                self.dirty = false;
                return Err(e);
            }
        }
        // An extension past the written bytes is written as zeros.
        while stream.len < self.extent {
            let n = (self.extent - stream.len).min(1 << 20) as usize;
            if let Err(e) = stream.writer.write(Bytes::from(vec![0u8; n])).await {
                let _ = stream.writer.abort().await;
                self.content = Content::Clean { size: self.base.1 };
                self.extent = 0;
                self.dirty = false;
                return Err(e.into());
            }
            stream.len += n as u64;
        }
        self.extent = 0;
        let len = stream.len;
        let finished = stream.writer.finish().await;
        store.changed();
        let published: ObjectMeta = match finished {
            Ok(meta) => meta,
            Err(e) => {
                // The store keeps the value it had; what was streamed is
                // lost. If the store cannot say its size now (an outage),
                // it is the size last published.
                let size = store.stat(session, key).await.map_or(self.base.1, |m| m.size);
                self.content = Content::Clean { size };
                self.dirty = false;
                return Err(e.into());
            }
        };
        self.content = Content::Clean { size: len };
        let mut wanted = stream.stored.clone();
        self.posix.write_to(&mut wanted);
        let times = [attr::ATIME, attr::MTIME, attr::CTIME];
        let times_stored = stream.stored.contains_key(attr::MTIME);
        let same = wanted
            .iter()
            .all(|(k, v)| (!times_stored && times.contains(&k.as_str())) || stream.stored.get(k) == Some(v));
        self.base = (published.metadata.clone(), len, published.modified);
        self.metadata = published.metadata;
        if same && (times_stored || !self.times_explicit) {
            if !times_stored {
                self.posix.atime = published.modified;
                self.posix.mtime = published.modified;
                self.posix.ctime = published.modified;
            }
            self.dirty = false;
        } else {
            self.dirty = true;
        }
        Ok(())
    }

    /// Makes the file `session`'s to change: if another principal's
    /// changes are pending, commits them as that principal first; refused
    /// by the access rules, they are discarded (the file is again what the
    /// store holds) and the refusal is kept for their writer; failing
    /// otherwise (a full disk), they are kept and this request fails.
    /// Returns whether the content changed (read-ahead buffers are then
    /// stale).
    pub async fn hand_over(
        &mut self,
        store: &Store,
        session: &Session,
        key: &Key,
        defaults: &attr::Defaults,
    ) -> FsResult<bool> {
        let Some(owner) = self.writer.clone() else { return Ok(false) };
        if owner.principal() == session.principal() {
            return Ok(false);
        }
        if !self.dirty || self.unlinked {
            self.writer = None;
            return Ok(false);
        }
        match self.commit(store, &owner, key).await {
            Ok(()) => Ok(false),
            // Not a refusal (a full disk, a backend down): the changes stay
            // their writer's, and this request fails with the reason; if
            // they were lost on the way (a stream that could not be
            // published), their writer hears of it too.
            Err(e) if e.errno() != libc::EACCES => {
                if !self.dirty {
                    self.refused.push((owner.principal().clone(), e.errno(), e.message().to_owned()));
                    self.writer = None;
                }
                Err(e)
            }
            Err(refusal) => {
                tracing::warn!(
                    key = %key,
                    principal = %owner.principal(),
                    error = %refusal,
                    "uncommitted changes of an open file were refused and discarded"
                );
                self.refused.push((owner.principal().clone(), refusal.errno(), refusal.message().to_owned()));
                self.discard(defaults).await;
                Ok(true)
            }
        }
    }

    /// Drops every uncommitted change: content and attributes are again
    /// what the store holds as this file last knew it (no request is made:
    /// nobody may be allowed to read the key now).
    pub async fn discard(&mut self, defaults: &attr::Defaults) {
        if let Content::Streaming(stream) = std::mem::replace(&mut self.content, Content::Clean { size: 0 }) {
            if let Err(e) = stream.writer.abort().await {
                tracing::debug!(error = %e, "abandoning a refused stream failed");
            }
        }
        let (metadata, size, modified) = self.base.clone();
        self.posix = PosixMeta::from_metadata(&metadata, modified, defaults);
        self.metadata = metadata;
        self.content = Content::Clean { size };
        self.sequential = size == 0;
        self.extent = 0;
        self.dirty = false;
        self.writer = None;
        self.times_explicit = false;
    }

    /// The refusal of `principal`'s changes waiting to be reported, if any.
    pub fn take_refused(&mut self, principal: &Principal) -> Option<FsError> {
        let i = self.refused.iter().position(|(p, _, _)| p == principal)?;
        let (_, errno, message) = self.refused.remove(i);
        Some(FsError::new(errno, format!("earlier changes to this file were not saved: {message}")))
    }

    /// Writes what changed to the store under `key`, as the writer.
    pub async fn commit(&mut self, store: &Store, session: &Session, key: &Key) -> FsResult<()> {
        if !self.dirty || self.unlinked {
            return Ok(());
        }
        let writer = self.writer.clone().unwrap_or_else(|| session.clone());
        self.settle(store, &writer, key).await?;
        if !self.dirty {
            self.writer = None;
            return Ok(());
        }
        let mut metadata = self.metadata.clone();
        self.posix.write_to(&mut metadata);
        let session = self.writer.clone().unwrap_or_else(|| session.clone());
        // A new file extended past what was written (`fallocate` before
        // the writes, as fio lays files out): one patch sets the length and
        // writes the head, so the zeros never travel (the local backend
        // keeps them as a sparse file).
        if let Content::Spooled(spool) = &self.content {
            if self.extent > spool.len() && self.base.1 == 0 {
                if let Some(head) = spool.to_bytes() {
                    let changes = MetadataChanges::replace_with(metadata.clone());
                    let patch =
                        tierfs_core::Patch::new().set_len(self.extent).write(0, head).metadata(changes);
                    store.patch(&session, key, &patch).await?;
                    self.content = Content::Clean { size: self.extent };
                    self.extent = 0;
                    self.base = (metadata.clone(), self.size(), std::time::SystemTime::now());
                    self.metadata = metadata;
                    self.dirty = false;
                    self.writer = None;
                    return Ok(());
                }
            }
        }
        self.fill_extent()?;
        let result = match &self.content {
            Content::Spooled(spool) => store.write_spool(&session, key, metadata.clone(), spool).await,
            Content::Clean { .. } => store.set_metadata(&session, key, metadata.clone()).await,
            Content::Patched(overlay) => {
                let changes = MetadataChanges::replace_with(metadata.clone());
                let patch = overlay.to_patch()?.metadata(changes);
                store.patch(&session, key, &patch).await
            }
            Content::Streaming(_) => return Err(FsError::new(libc::EIO, "a settled stream is still open")),
        };
        result?;
        if let Content::Patched(overlay) = &self.content {
            self.content = Content::Clean { size: overlay.len() };
        }
        self.base = (metadata.clone(), self.size(), std::time::SystemTime::now());
        self.metadata = metadata;
        self.dirty = false;
        self.writer = None;
        Ok(())
    }
}

/// Appends the stored bytes of `key` from `stream.len` up to `end` to the
/// stream (an overwrite in order that stopped before the old end).
async fn copy_tail(
    store: &Store,
    session: &Session,
    key: &Key,
    stream: &mut Stream,
    end: u64,
) -> FsResult<()> {
    if stream.len >= end {
        return Ok(());
    }
    let mut old = store.read_range(session, key, Some(stream.len..end)).await?;
    while let Some(chunk) = old.next().await {
        let chunk = chunk?;
        stream.writer.write(chunk.clone()).await?;
        stream.len += chunk.len() as u64;
    }
    if stream.len != end {
        return Err(FsError::new(libc::EIO, format!("`{key}` changed while it was being overwritten")));
    }
    Ok(())
}

/// Copies `range` of `key`'s stored value into `spool` at the same offsets.
async fn fill_from_store(
    store: &Store,
    session: &Session,
    key: &Key,
    range: std::ops::Range<u64>,
    spool: &mut Spool,
) -> FsResult<()> {
    let mut pos = range.start;
    while pos < range.end {
        let end = (pos + (8 << 20)).min(range.end);
        let bytes = store.get_range(session, key, pos..end).await?;
        if bytes.is_empty() {
            return Err(FsError::new(libc::EIO, format!("`{key}` is shorter than it was")));
        }
        spool.write_at(pos, &bytes)?;
        pos += bytes.len() as u64;
    }
    Ok(())
}

/// Copies `size` bytes of `key` into a new spool.
async fn copy_in(
    store: &Store,
    session: &Session,
    key: &Key,
    size: u64,
    dir: &Arc<SpoolDir>,
) -> FsResult<Spool> {
    let mut spool = Spool::new(dir);
    if size == 0 {
        return Ok(spool);
    }
    if size <= MAX_VALUE as u64 {
        let bytes = store.get_range(session, key, 0..size).await?;
        spool.write_at(0, &bytes)?;
        return Ok(spool);
    }
    let mut stream = store.read(session, key).await?;
    let mut offset = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        spool.write_at(offset, &chunk)?;
        offset += chunk.len() as u64;
    }
    Ok(spool)
}

/// The state shared by every handle of one inode.
#[derive(Debug)]
pub struct OpenFile {
    /// The state; held across store calls, so waits are async.
    pub state: tokio::sync::Mutex<FileState>,
    /// Attributes and size, readable without waiting for a commit.
    snapshot: Mutex<(PosixMeta, u64, bool)>,
    /// Bumped on every content change (read-ahead buffers check it).
    generation: AtomicU64,
    /// Handles opened to execute the file (`FMODE_EXEC`): while any is
    /// open, opening it to write or truncate is `ETXTBSY`.
    executing: std::sync::atomic::AtomicU32,
    /// Its opens by kind, cached or passthrough.
    pub passthrough: Mutex<super::passthrough::Passthrough>,
}

impl OpenFile {
    /// An open file in `state`.
    pub fn new(state: FileState) -> Arc<Self> {
        let snapshot = Mutex::new((state.posix.clone(), state.size(), state.unlinked));
        Arc::new(OpenFile {
            state: tokio::sync::Mutex::new(state),
            snapshot,
            generation: AtomicU64::new(0),
            executing: std::sync::atomic::AtomicU32::new(0),
            passthrough: Mutex::default(),
        })
    }

    /// Records the attributes of `state` for readers of the snapshot; with
    /// `content_changed`, invalidates read-ahead buffers.
    pub fn publish(&self, state: &FileState, content_changed: bool) {
        *self.snapshot.lock() = (state.posix.clone(), state.size(), state.unlinked);
        if content_changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Attributes, size and whether the file was unlinked.
    pub fn snapshot(&self) -> (PosixMeta, u64, bool) {
        self.snapshot.lock().clone()
    }

    /// Counts a handle opened to execute the file, or (`false`) its release.
    pub fn executes(&self, opened: bool) {
        if opened {
            self.executing.fetch_add(1, Ordering::AcqRel);
        } else {
            self.executing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether a process is executing the file.
    pub fn is_executing(&self) -> bool {
        self.executing.load(Ordering::Acquire) > 0
    }

    /// The content generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
