//! File handles: open, read, write, flush, fsync and release, and the
//! open-file state they share.

use super::*;

use bytes::BytesMut;
use journal::MAX_VALUE;
use overlay::{Overlay, Piece};
use passthrough::{Mode, Register};
use tierfs_core::LocalFile;

impl TierFs {
    /// The open-file state of `ino`, loading it from the store if no handle
    /// has it; the open count goes up by one (undo with `close_file`).
    /// The open state of `ino` (the one already open, or a new one from
    /// the store), and on a shared store the version the store holds when
    /// the state is new (see [`TierFs::pages_current`]).
    pub(super) async fn attach(
        &self,
        ino: u64,
        session: &Session,
        k: &Key,
    ) -> FsResult<(Arc<OpenFile>, Option<String>)> {
        if let Some(file) = self.inodes.open_existing(ino) {
            return Ok((file, None));
        }
        let meta = self.store.stat(session, k).await?;
        let posix = PosixMeta::from_object(&meta, &self.options.defaults);
        if posix.kind != Kind::File {
            let errno = if posix.kind == Kind::Dir { libc::EISDIR } else { libc::EINVAL };
            return Err(FsError::new(errno, format!("`{k}` is not a regular file")));
        }
        let version = self.options.shared.then(|| meta.version.clone());
        let state = FileState::clean(posix, meta.metadata, meta.size);
        Ok((self.inodes.open(ino, || OpenFile::new(state))?, version))
    }

    /// Whether the pages the kernel may hold of `ino` are of `version`, the
    /// one the store holds now (`None`: the file is open here already, or
    /// the store is not shared). Not when they came from another version,
    /// from a write through this mount (its version is not known), or when
    /// the store gives no version to compare.
    fn pages_current(&self, ino: u64, version: Option<&str>) -> bool {
        let Some(version) = version else { return true };
        match self.page_versions.lock().get(&ino) {
            None => true,
            Some(cached) => !version.is_empty() && cached.as_deref() == Some(version),
        }
    }

    /// Drops one open of `ino`; the last one commits unsaved changes and
    /// detaches the state, unless something is left to tell or to save:
    /// changes that could not be committed (a full store, a backend down)
    /// stay with the inode, still seen by every reader, and are tried again
    /// at its next `fsync` or close and at unmount; changes that were lost
    /// (refused, or a stream that could not be published) are reported to
    /// their writer at its next write, `fsync` or `close` of the file. The
    /// result of a release reaches no one (the kernel drops it), so it is
    /// only logged by the caller.
    pub(super) async fn close_file(&self, ino: u64, file: &Arc<OpenFile>, session: &Session) -> FsResult<()> {
        let (result, keep) = {
            let mut state = file.state.lock().await;
            let last = self.inodes.close(ino);
            // A principal's changes are committed when it closes the file,
            // even if others still have it open; all are at the last close.
            let own = state.writer.as_ref().is_some_and(|w| w.principal() == session.principal());
            let committed = if (last || own) && state.dirty && !state.unlinked {
                let writer = state.writer.clone().unwrap_or_else(|| session.clone());
                let committed = match self.inodes.key(ino) {
                    Ok(k) => state.commit(&self.store, session, &k).await,
                    Err(e) => Err(e),
                };
                let mut content_changed = false;
                if let Err(e) = &committed {
                    if e.errno() == libc::EACCES {
                        state.discard(&self.options.defaults).await;
                        content_changed = true;
                    }
                    if !state.dirty {
                        state.refused.push((writer.principal().clone(), e.errno(), e.message().to_owned()));
                    }
                }
                file.publish(&state, content_changed);
                committed
            } else {
                Ok(())
            };
            let keep = last && !state.unlinked && (state.dirty || !state.refused.is_empty());
            (committed, keep)
        };
        if keep {
            tracing::warn!(ino, "a closed file keeps unsaved changes or an unreported failure in memory");
        } else {
            self.inodes.detach_if_closed(ino);
        }
        result
    }

    /// Opens file `ino` with open(2) `flags`.
    pub async fn open(&self, caller: &Caller, ino: u64, flags: i32) -> FsResult<Opened> {
        self.open_backed(caller, ino, flags, None).await
    }

    /// Opens a file; a read-only open may be served by passthrough when
    /// `register` can register a backing file with the kernel (see
    /// [`passthrough`]).
    pub async fn open_backed(
        &self,
        caller: &Caller,
        ino: u64,
        flags: i32,
        register: Option<Register<'_>>,
    ) -> FsResult<Opened> {
        let k = self.inodes.key(ino)?;
        let session = self.session(caller);
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let fresh = self.inodes.open_file(ino).is_none();
        if writable {
            self.store.check(&session, Op::Write, &k)?;
        }
        let (file, version) = self.attach(ino, &session, &k).await?;
        let keep_cache = self.pages_current(ino, version.as_deref());
        let checked = async {
            // A file being executed is not opened to change: the kernel
            // refuses write opens itself, but leaves a truncating open to
            // the file system (`O_TRUNC` reaches the daemon).
            if (writable || flags & libc::O_TRUNC != 0) && file.is_executing() {
                return Err(FsError::new(libc::ETXTBSY, format!("`{k}` is being executed")));
            }
            if !fresh && flags & libc::O_ACCMODE != libc::O_WRONLY {
                self.store.check(&session, Op::Read, &k)?;
            }
            if writable && flags & libc::O_TRUNC != 0 {
                let mut state = file.state.lock().await;
                state.hand_over(&self.store, &session, &k, &self.options.defaults).await?;
                if state.size() != 0 || matches!(state.content, Content::Clean { .. }) {
                    state.truncate_to_zero(&self.spool).await;
                    state.posix.touch_content();
                    state.dirty = true;
                    state.writer = Some(session.clone());
                    file.publish(&state, true);
                }
            }
            Ok::<_, FsError>(())
        }
        .await;
        if let Err(e) = checked {
            if version.is_some() {
                // The kernel kept whatever pages it had: which is unknown now.
                self.page_versions.lock().insert(ino, None);
            }
            self.close_file(ino, &file, &session).await?;
            return Err(e);
        }
        if let Some(version) = version {
            // The kernel drops other pages at this open (no keep-cache).
            self.page_versions.lock().insert(ino, Some(version));
        }
        let (mode, drop_pages) = self.open_mode(&file, &session, &k, writable, register).await;
        let opened = self.add_handle(ino, file, session, flags, mode);
        Ok(Opened { keep_cache: keep_cache && !drop_pages, ..opened })
    }

    /// The kind of a new open of `file`, and whether the kernel's pages of
    /// it must be dropped (see [`passthrough`]).
    async fn open_mode(
        &self,
        file: &Arc<OpenFile>,
        session: &Session,
        k: &Key,
        writable: bool,
        register: Option<Register<'_>>,
    ) -> (Mode, bool) {
        // With access rules or an audit log, every read is decided and
        // recorded here: no passthrough.
        let Some(register) =
            register.filter(|_| self.passthrough.load(Ordering::Acquire) && self.store.open_access())
        else {
            return (Mode::Cached, file.passthrough.lock().cache());
        };
        let generation = file.generation();
        {
            let mut pass = file.passthrough.lock();
            if let Some(mode) = pass.share(writable, generation) {
                return (mode, false);
            }
            if pass.must_cache(writable) {
                return (Mode::Cached, pass.cache());
            }
        }
        let local = self.backing_file(file, session, k).await;
        let mut pass = file.passthrough.lock();
        let backed = match local {
            Some(local) if file.generation() == generation => pass.back(local, generation, register),
            _ => pass.share(false, generation),
        };
        match backed {
            Some(mode) => (mode, false),
            None => (Mode::Cached, pass.cache()),
        }
    }

    /// The store's local file of `file`'s value, when the file has no
    /// change here and the store keeps its value so.
    async fn backing_file(&self, file: &OpenFile, session: &Session, k: &Key) -> Option<LocalFile> {
        let size = {
            let state = file.state.lock().await;
            if state.dirty || !state.refused.is_empty() || !matches!(state.content, Content::Clean { .. }) {
                return None;
            }
            state.size()
        };
        match self.store.open_file(session, k).await {
            Ok(Some(local)) if local.meta().size == size => Some(local),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(key = %k, error = %e, "no backing file; the open is cached");
                None
            }
        }
    }

    fn add_handle(&self, ino: u64, file: Arc<OpenFile>, session: Session, flags: i32, mode: Mode) -> Opened {
        let fh = self.new_fh();
        let exec = flags & FMODE_EXEC != 0;
        if exec {
            file.executes(true);
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let handle = Handle {
            ino,
            file,
            session,
            writable,
            append: flags & libc::O_APPEND != 0,
            exec,
            readahead: tokio::sync::Mutex::new(ReadAhead::default()),
            mode: mode.clone(),
        };
        self.handles.lock().insert(fh, Arc::new(handle));
        if writable && self.options.shared {
            // Pages written here are of a version not known until read back.
            self.page_versions.lock().insert(ino, None);
        }
        let passthrough = match mode {
            Mode::Cached => None,
            Mode::Backed { id, direct } => Some((id, direct)),
        };
        Opened { fh, writable, keep_cache: true, passthrough }
    }

    /// Creates and opens a regular file.
    pub async fn create(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> FsResult<(Entry, Opened)> {
        let name = utf8(name)?;
        let k = self.inodes.child_key(parent, name)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        if flags & libc::O_EXCL != 0 && self.resolve(&session, &k).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{k}` exists")));
        }
        let (uid, gid, mode) = Self::owner_for_new(caller, &parent_posix, Kind::File, mode);
        let posix = PosixMeta::new(Kind::File, mode, uid, gid);
        let metadata = posix.to_metadata();
        self.store.put(&session, &k, Bytes::new(), metadata.clone()).await?;
        self.touch_dir(&session, parent, parent_posix).await;
        let ino = self.inodes.lookup(parent, name, Kind::File);
        let mut state = FileState::clean(posix, metadata, 0);
        state.truncate_to_zero(&self.spool).await;
        let file = self.inodes.open(ino, || OpenFile::new(state))?;
        {
            let mut state = file.state.lock().await;
            state.hand_over(&self.store, &session, &k, &self.options.defaults).await?;
            if state.size() != 0 {
                state.truncate_to_zero(&self.spool).await;
                state.dirty = true;
                state.writer = Some(session.clone());
                file.publish(&state, true);
            }
        }
        let (posix, size, _) = file.snapshot();
        let entry = Entry { attr: Attr::new(ino, posix, size), ttl: self.ttl() };
        // A name created meanwhile by another may be open by passthrough.
        let (mode, drop_pages) = {
            let mut pass = file.passthrough.lock();
            match pass.share(true, file.generation()) {
                Some(mode) => (mode, false),
                None => (Mode::Cached, pass.cache()),
            }
        };
        let opened = self.add_handle(ino, file, session, flags, mode);
        Ok((entry, Opened { keep_cache: !drop_pages, ..opened }))
    }

    /// Reads up to `size` bytes at `offset`. Each read is decided again
    /// (a reload that narrows the rules applies to open files), and
    /// another principal's uncommitted changes are committed (or, refused,
    /// discarded) before this principal sees them.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let handle = self.handle(fh)?;
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Read, k)?;
        }
        let (file_size, generation) = {
            let mut state = handle.file.state.lock().await;
            if let Some(k) = &open_key {
                if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                    handle.file.publish(&state, true);
                }
            }
            if matches!(state.content, Content::Streaming(_)) {
                let k = self.inodes.key(handle.ino)?;
                let session = state.writer.clone().unwrap_or_else(|| handle.session.clone());
                state.settle(&self.store, &session, &k).await?;
                handle.file.publish(&state, true);
            }
            match &state.content {
                Content::Spooled(spool) => {
                    let mut bytes = spool.read_at(offset, size as usize)?;
                    // Zeros of an extension past the written bytes.
                    let end = (offset + u64::from(size)).min(state.extent);
                    if end > offset + bytes.len() as u64 {
                        let mut padded = bytes.to_vec();
                        padded.resize((end - offset) as usize, 0);
                        bytes = Bytes::from(padded);
                    }
                    return Ok(bytes);
                }
                Content::Patched(overlay) => {
                    let k = self.inodes.key(handle.ino)?;
                    let session = state.writer.clone().unwrap_or_else(|| handle.session.clone());
                    return read_patched(&self.store, &session, &k, overlay, offset, u64::from(size)).await;
                }
                _ => (state.size(), handle.file.generation()),
            }
        };
        if offset >= file_size {
            return Ok(Bytes::new());
        }
        let k = self.inodes.key(handle.ino)?;
        let mut readahead = handle.readahead.lock().await;
        readahead.read(&self.store, &handle.session, &k, offset, u64::from(size), file_size, generation).await
    }

    /// Writes `data` at `offset` (at the end for `O_APPEND` handles).
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Err(FsError::new(libc::EBADF, "the file is not open for writing"));
        }
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Write, k)?;
        }
        let mut state = handle.file.state.lock().await;
        if let Some(refused) = state.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        if let Some(k) = &open_key {
            if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
            self.within_quota(&handle, &mut state, k, offset, data.len() as u64).await?;
        }
        self.write_locked(&handle, &mut state, offset, data).await?;
        state.dirty = true;
        state.posix.touch_content();
        state.writer = Some(handle.session.clone());
        handle.file.publish(&state, true);
        Ok(data.len() as u32)
    }

    /// Refuses a write that would grow a file a quota counts past that
    /// quota, with `EDQUOT`: the file's unsaved changes are dropped (it
    /// reads again as the store holds it, so no half-written copy is ever
    /// saved), and its writer's `close` reports the refusal too.
    async fn within_quota(
        &self,
        handle: &Handle,
        state: &mut FileState,
        key: &Key,
        offset: u64,
        len: u64,
    ) -> FsResult<()> {
        // A stream reserves as it goes, and refuses the chunk that passes.
        if !handle.session.counted(key) || matches!(state.content, Content::Streaming(_)) {
            return Ok(());
        }
        let size = state.size();
        let end = if handle.append { size + len } else { offset + len };
        if end <= size {
            return Ok(());
        }
        let Err(e) = self.store.check_quota(&handle.session, key, end as i64 - state.base.1 as i64).await
        else {
            return Ok(());
        };
        let refusal = FsError::from(e);
        tracing::warn!(key = %key, error = %refusal, "a write past a quota was refused; the file's unsaved changes are dropped");
        state.refused.push((
            handle.session.principal().clone(),
            refusal.errno(),
            refusal.message().to_owned(),
        ));
        state.discard(&self.options.defaults).await;
        handle.file.publish(state, true);
        Err(refusal)
    }

    /// The key of a handle's file; `None` once it was unlinked (its handles
    /// keep the content, which is never committed again).
    fn open_key(&self, handle: &Handle) -> FsResult<Option<Key>> {
        match self.inodes.key_of(handle.ino) {
            Ok(k) => Ok(Some(key(k)?)),
            Err(_) => Ok(None),
        }
    }

    /// Decides `op` on `key` again for an open handle (no audit record
    /// while allowed; a refusal is audited).
    fn still_allowed(&self, session: &Session, op: Op, key: &Key) -> FsResult<()> {
        if session.allows(op, key.as_str()) {
            return Ok(());
        }
        Ok(self.store.check(session, op, key)?)
    }

    async fn write_locked(
        &self,
        handle: &Handle,
        state: &mut FileState,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let file_key = || self.inodes.key(handle.ino);
        if let Content::Streaming(stream) = &mut state.content {
            if (handle.append && stream.len() >= state.extent) || offset == stream.len() {
                if let Err(e) = stream.append(data).await {
                    // The writer is broken: drop what it holds, keep the store's value.
                    let k = file_key()?;
                    state.truncate_to_zero(&self.spool).await;
                    let size = self.store.stat(&handle.session, &k).await.map_or(0, |m| m.size);
                    state.content = Content::Clean { size };
                    state.dirty = false;
                    let e = FsError::from(e);
                    if e.errno() == libc::EDQUOT {
                        // Its writer's `close` reports it too.
                        state.refused.push((
                            handle.session.principal().clone(),
                            e.errno(),
                            e.message().to_owned(),
                        ));
                    }
                    return Err(e);
                }
                return Ok(());
            }
            state.settle(&self.store, &handle.session, &file_key()?).await?;
        }
        if let Content::Clean { size: 0 } = state.content {
            state.content = Content::Spooled(spool::Spool::new(&self.spool));
        }
        // A large stored file: only the changed ranges are kept, and sent
        // at the commit.
        if let Content::Clean { size } = state.content {
            if size > MAX_VALUE as u64 {
                state.content = Content::Patched(Overlay::new(&self.spool, size));
            }
        }
        if let Content::Patched(overlay) = &mut state.content {
            let at = if handle.append { overlay.len() } else { offset };
            let in_order = overlay.in_order_from_start().is_some_and(|n| n == at);
            if in_order && at + data.len() as u64 >= overlay::OVERWRITE_STREAM_MIN {
                return state.overwrite_stream(&self.store, &handle.session, &file_key()?, data).await;
            }
            let Content::Patched(overlay) = &mut state.content else { unreachable!("matched above") };
            overlay.write_at(at, data)?;
            if overlay.changed() > overlay::MAX_CHANGED {
                state.spool(&self.store, &handle.session, &file_key()?, &self.spool).await?;
            }
            return Ok(());
        }
        if let Content::Spooled(spool) = &state.content {
            let at = if handle.append { spool.len().max(state.extent) } else { offset };
            let outgrows = spool.in_memory()
                && at == spool.len()
                && spool.len() + data.len() as u64 > self.spool.memory_limit() as u64;
            if state.sequential && outgrows {
                return state.start_stream(&self.store, &handle.session, &file_key()?, data).await;
            }
        }
        if let Content::Spooled(spool) = &state.content {
            let at = if handle.append { spool.len().max(state.extent) } else { offset };
            if at != spool.len() {
                // Out of order: the zeros of an extension become content.
                state.sequential = false;
                state.fill_extent()?;
            }
        }
        let extent = state.extent;
        let spool = match &mut state.content {
            Content::Spooled(spool) => spool,
            _ => state.spool(&self.store, &handle.session, &file_key()?, &self.spool).await?,
        };
        let at = if handle.append { spool.len().max(extent) } else { offset };
        spool.write_at(at, data)?;
        Ok(())
    }

    /// `close` of one descriptor (sent for descriptors open to write only):
    /// reports what is known not to have reached the store of this
    /// principal's changes to the file: a refusal, a stream that could not
    /// be published, a change the journal dropped or holds for want of
    /// space. It commits nothing (a `close` of a duplicated descriptor,
    /// which shells make for every redirection, would publish a file still
    /// being written) and does not wait for queued changes (`fsync` does):
    /// changes reach the store when the kernel releases the file or on
    /// `fsync`. The exception is a file a quota counts: its `close` commits
    /// it (what was written so far), so a passed quota is `EDQUOT` here.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        if !handle.writable {
            return Ok(());
        }
        if let Some(refused) = handle.file.state.lock().await.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        let k = self.inodes.key(handle.ino)?;
        if handle.session.counted(&k) {
            self.commit_counted(&handle, &k).await?;
        }
        match self.store.failure(&handle.session, Some(&k)) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// `close` of a file a quota counts commits it, so its writer hears
    /// of a passed quota (`EDQUOT`); refused, its unsaved changes are
    /// dropped and the file reads as the store holds it.
    async fn commit_counted(&self, handle: &Handle, k: &Key) -> FsResult<()> {
        let mut state = handle.file.state.lock().await;
        if !state.dirty || state.unlinked {
            return Ok(());
        }
        if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
            handle.file.publish(&state, true);
        }
        match state.commit(&self.store, &handle.session, k).await {
            Ok(()) => {
                handle.file.publish(&state, false);
                Ok(())
            }
            Err(e) if e.errno() == libc::EDQUOT => {
                tracing::warn!(key = %k, error = %e, "a file past its quota was not saved; its unsaved changes are dropped");
                state.discard(&self.options.defaults).await;
                handle.file.publish(&state, true);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the file's content and attributes durable in the store.
    /// Another principal's pending changes are committed as theirs (a
    /// refusal of those is not this caller's error); a refusal of this
    /// principal's own changes, now or earlier, is, as is a change of this
    /// principal the journal could not commit (`ENOSPC` while the store is
    /// full).
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        let mut state = handle.file.state.lock().await;
        if let Some(refused) = state.take_refused(handle.session.principal()) {
            return Err(refused);
        }
        if state.dirty && !state.unlinked {
            let k = self.inodes.key(handle.ino)?;
            if state.hand_over(&self.store, &handle.session, &k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
            // Refused, the changes stay this principal's only: another's
            // request discards them (see `FileState::hand_over`).
            state.commit(&self.store, &handle.session, &k).await?;
            handle.file.publish(&state, false);
        }
        drop(state);
        Ok(self.store.sync(&handle.session).await?)
    }

    /// `fsync` of a directory: every queued change is committed and made
    /// durable; fails if one of the caller's could not be.
    pub async fn fsyncdir(&self, caller: &Caller) -> FsResult<()> {
        Ok(self.store.sync(&self.session(caller)).await?)
    }

    /// The last close of one `open`: commits unsaved changes when it is the
    /// inode's last handle.
    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let Some(handle) = self.handles.lock().remove(&fh) else {
            return Err(FsError::new(libc::EBADF, format!("no open file {fh}")));
        };
        if handle.exec {
            handle.file.executes(false);
        }
        handle.file.passthrough.lock().release(&handle.mode);
        let result = self.close_file(handle.ino, &handle.file, &handle.session).await;
        if let Err(e) = &result {
            tracing::error!(ino = handle.ino, error = %e, "changes of a closed file could not be saved");
        }
        result
    }

    /// Preallocates: mode 0 extends the file to `offset + length`;
    /// `FALLOC_FL_KEEP_SIZE` does nothing (space is not reserved); other
    /// modes are refused with `EOPNOTSUPP`.
    pub async fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(FsError::new(libc::EOPNOTSUPP, "only plain fallocate is supported"));
        }
        let handle = self.handle(fh)?;
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Ok(());
        }
        let end = offset + length;
        let open_key = self.open_key(&handle)?;
        if let Some(k) = &open_key {
            self.still_allowed(&handle.session, Op::Write, k)?;
        }
        let mut state = handle.file.state.lock().await;
        if let Some(k) = &open_key {
            if state.hand_over(&self.store, &handle.session, k, &self.options.defaults).await? {
                handle.file.publish(&state, true);
            }
            self.within_quota(&handle, &mut state, k, offset, length).await?;
        }
        if end > state.size() {
            let k = self.inodes.key(handle.ino)?;
            state.writer = Some(handle.session.clone());
            state.set_size(&self.store, &handle.session, &k, &self.spool, end).await?;
            state.dirty = true;
            state.posix.touch_content();
            handle.file.publish(&state, true);
        }
        Ok(())
    }
}

/// Reads `offset..offset + size` of a file with an overlay: changed bytes
/// from it, the rest from the store, zeros past the stored value.
async fn read_patched(
    store: &Store,
    session: &Session,
    key: &Key,
    overlay: &Overlay,
    offset: u64,
    size: u64,
) -> FsResult<Bytes> {
    let pieces = overlay.pieces(offset, size)?;
    if let [Piece::Changed(bytes)] = pieces.as_slice() {
        return Ok(bytes.clone());
    }
    let mut out = BytesMut::with_capacity(size as usize);
    for piece in pieces {
        match piece {
            Piece::Changed(bytes) => out.extend_from_slice(&bytes),
            Piece::Stored(range) => {
                let want = range.end - range.start;
                let bytes = store.get_range(session, key, range).await?;
                if (bytes.len() as u64) < want {
                    return Err(FsError::new(libc::EIO, format!("`{key}` is shorter than it was")));
                }
                out.extend_from_slice(&bytes);
            }
            Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
        }
    }
    Ok(out.freeze())
}
