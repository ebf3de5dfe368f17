//! Directories: open, read (with the kept listings), release, statfs and
//! unmount.

use super::*;

impl TierFs {
    /// Opens directory `ino` for reading; lists it (or takes the listing
    /// kept, see [`DirCache`]).
    pub async fn opendir(&self, caller: &Caller, ino: u64) -> FsResult<OpenedDir> {
        let session = self.session(caller);
        let prefix = if ino == ROOT {
            String::new()
        } else {
            let k = self.inodes.key_of(ino)?;
            if self.inodes.kind(ino) != Some(Kind::Dir) {
                return Err(FsError::new(libc::ENOTDIR, format!("`{k}` is not a directory")));
            }
            format!("{k}/")
        };
        let (children, cache) = match self.store.kept_children(&session, &prefix) {
            Some(kept) => (kept, DirCache::Keep),
            None => (self.store.children(&session, &prefix).await?, DirCache::Fill),
        };
        let cache = if self.store.kernel_may_keep_listings() { cache } else { DirCache::Off };
        let parent = self.parent_of(ino);
        let fh = self.new_fh();
        let handle = DirHandle {
            ino,
            parent,
            prefix,
            session,
            listing: tokio::sync::Mutex::new(DirListing { fresh: true, children }),
        };
        self.dirs.lock().insert(fh, Arc::new(handle));
        Ok(OpenedDir { fh, cache })
    }

    fn parent_of(&self, ino: u64) -> u64 {
        let Ok(k) = self.inodes.key_of(ino) else { return ROOT };
        match k.rfind('/') {
            Some(i) => self.ino_of_key(&k[..i]).unwrap_or(ROOT),
            None => ROOT,
        }
    }

    fn ino_of_key(&self, k: &str) -> Option<u64> {
        let mut ino = ROOT;
        for segment in k.split('/') {
            ino = self.inodes.child(ino, segment)?;
        }
        Some(ino)
    }

    /// Lists directory handle `fh` from `offset` into `replier`; with
    /// `plus`, entries carry attributes and count as lookups.
    pub async fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        replier: &mut (dyn DirReplier + Send),
    ) -> FsResult<()> {
        let dir = self
            .dirs
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, "no open directory"))?;
        let mut listing = dir.listing.lock().await;
        if offset == 0 && !listing.fresh {
            listing.children = self.store.children(&dir.session, &dir.prefix).await?;
        }
        listing.fresh = false;
        let dots = [(".", dir.ino), ("..", dir.parent)];
        let total = listing.children.len() as u64 + 2;
        for index in offset..total {
            let next = index + 1;
            if index < 2 {
                let (name, ino) = dots[index as usize];
                let entry = plus.then(|| self.dot_entry(ino));
                let full =
                    replier.add(DirEntry { ino, offset: next, name: name.into(), kind: Kind::Dir, entry });
                if full {
                    return Ok(());
                }
                continue;
            }
            let child = &listing.children[(index - 2) as usize];
            let (posix, size) = self.child_posix(child);
            let kind = posix.kind;
            if plus {
                let ino = self.inodes.lookup(dir.ino, &child.name, kind);
                let mut entry = self.entry(ino, posix, size);
                if child.object.as_ref().is_some_and(|meta| meta.metadata.is_empty()) {
                    // Listed without metadata (S3): mode, owner and times are
                    // guesses, so the kernel must not keep them.
                    entry.ttl = Duration::ZERO;
                }
                let full = replier.add(DirEntry {
                    ino,
                    offset: next,
                    name: child.name.clone(),
                    kind,
                    entry: Some(entry),
                });
                if full {
                    self.inodes.forget(ino, 1);
                    return Ok(());
                }
            } else {
                let ino = self.inodes.child(dir.ino, &child.name).unwrap_or_else(|| {
                    let mut h = DefaultHasher::new();
                    (&dir.prefix, &child.name).hash(&mut h);
                    h.finish() | (1 << 63)
                });
                if replier.add(DirEntry { ino, offset: next, name: child.name.clone(), kind, entry: None }) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn dot_entry(&self, ino: u64) -> Entry {
        if ino == ROOT {
            return self.root_entry();
        }
        Entry {
            attr: Attr::new(ino, PosixMeta::implicit_dir(&self.options.defaults), 0),
            ttl: Duration::ZERO,
        }
    }

    fn child_posix(&self, child: &Child) -> (PosixMeta, u64) {
        match &child.object {
            Some(meta) => (PosixMeta::from_object(meta, &self.options.defaults), meta.size),
            None => (PosixMeta::implicit_dir(&self.options.defaults), 0),
        }
    }

    /// Closes directory handle `fh`.
    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }

    /// Space of the file system holding the store (its local backend's
    /// directory; the spool's for a store of objects only), and no inode limit.
    pub fn statfs(&self, ino: u64) -> FsResult<Statfs> {
        let dir = self.options.store_dir.as_deref().unwrap_or(self.spool.dir());
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| FsError::new(libc::EIO, "the store's path contains NUL"))?;
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `st` is valid for writes.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let mut statfs = Statfs {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: u64::from(u32::MAX),
            ffree: u64::from(u32::MAX) - self.inodes.len() as u64,
            bsize: st.f_bsize as u32,
            namelen: inode::MAX_NAME_LEN as u32,
            frsize: st.f_frsize as u32,
        };
        // Under a quota, `df` shows the quota: its size, and what is left
        // of it (or of the device, when that is less).
        let path = match self.inodes.key_of(ino) {
            Ok(key) if key.is_empty() => key,
            Ok(key) => format!("{key}/"),
            Err(_) => String::new(),
        };
        if let Some(quota) = self.store.manager().quota_of(&path) {
            let unit = u64::from(statfs.frsize.max(1));
            if let Some(max) = quota.max_bytes {
                let left = max.saturating_sub(quota.used.bytes) / unit;
                statfs.blocks = max.div_ceil(unit);
                statfs.bfree = statfs.bfree.min(left);
                statfs.bavail = statfs.bavail.min(left);
            }
            if let Some(max) = quota.max_keys {
                statfs.files = max;
                statfs.ffree = max.saturating_sub(quota.used.keys);
            }
        }
        Ok(statfs)
    }

    /// Commits every open file with unsaved changes and every queued change
    /// (unmount: the kernel may drop releases still queued when it unmounts).
    pub async fn shutdown(&self) -> FsResult<()> {
        let mut first_error = None;
        for (ino, file) in self.inodes.all_open_files() {
            let mut state = file.state.lock().await;
            if state.unlinked || (!state.dirty && state.refused.is_empty()) {
                continue;
            }
            let session = match &state.writer {
                Some(s) => s.clone(),
                None => self.store.manager().session("root"),
            };
            let k = match self.inodes.key(ino) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(ino, error = %e, "not committed at unmount: the file has no name");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if state.dirty {
                if let Err(e) = state.commit(&self.store, &session, &k).await {
                    tracing::error!(key = %k, principal = %session.principal(), error = %e, "not committed at unmount");
                    first_error.get_or_insert(e);
                }
            }
            for (principal, _, message) in state.refused.drain(..) {
                tracing::error!(key = %k, %principal, error = %message, "not committed: lost before unmount and not yet reported");
            }
        }
        if let Err(e) = self.store.close(CLOSE_GRACE).await {
            tracing::error!(error = %e, "queued changes could not be written at unmount");
            first_error.get_or_insert(e.into());
        }
        first_error.map_or(Ok(()), Err)
    }
}
