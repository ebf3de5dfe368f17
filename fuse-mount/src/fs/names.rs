//! Names: lookup, attributes, creating, renaming and removing entries,
//! links and extended attributes.

use super::*;

impl TierFs {
    /// Looks `name` up in directory `parent`.
    pub async fn lookup(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<Entry> {
        let name = utf8(name)?;
        let k = self.inodes.child_key(parent, name)?;
        let session = self.session(caller);
        let (posix, size) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        let ino = self.inodes.lookup(parent, name, posix.kind);
        Ok(self.entry(ino, posix, size))
    }

    /// Drops `n` kernel lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
        if self.options.shared && self.inodes.key_of(ino).is_err() {
            // Gone from the kernel, with its pages.
            self.page_versions.lock().remove(&ino);
        }
    }

    /// The attributes of `ino` (through handle `fh` if given).
    pub async fn getattr(&self, caller: &Caller, ino: u64, fh: Option<u64>) -> FsResult<Entry> {
        if ino == ROOT {
            return Ok(self.root_entry());
        }
        let open = fh.and_then(|fh| self.handles.lock().get(&fh).map(|h| h.file.clone()));
        if let Some(file) = open.or_else(|| self.inodes.open_file(ino)) {
            let (posix, size, unlinked) = file.snapshot();
            let mut attr = Attr::new(ino, posix, size);
            if unlinked {
                attr.nlink = 0;
            }
            return Ok(Entry { attr, ttl: self.ttl() });
        }
        let k = self.inodes.key(ino)?;
        let session = self.session(caller);
        let (posix, size) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        Ok(self.entry(ino, posix, size))
    }

    /// Changes attributes: truncation, mode, owner, times.
    pub async fn setattr(&self, caller: &Caller, ino: u64, set: SetAttr) -> FsResult<Entry> {
        let now = SystemTime::now();
        let apply = |posix: &mut PosixMeta| {
            if let Some(mode) = set.mode {
                posix.mode = mode & 0o7777;
            }
            if let Some(uid) = set.uid {
                posix.uid = uid;
            }
            if let Some(gid) = set.gid {
                posix.gid = gid;
            }
            if let Some(t) = set.atime {
                posix.atime = t.resolve();
            }
            if let Some(t) = set.mtime {
                posix.mtime = t.resolve();
            }
            posix.ctime = set.ctime.unwrap_or(now);
        };
        let session = self.session(caller);
        if ino == ROOT {
            if set.size.is_some() {
                return Err(FsError::new(libc::EISDIR, "the root is a directory"));
            }
            // The root's attributes are everyone's: changing them needs
            // write on the whole store (`*`), and is audited.
            session.check(Op::Write, "")?;
            apply(&mut self.root.lock());
            return Ok(self.root_entry());
        }
        let k = self.inodes.key(ino)?;
        let kind = match self.inodes.kind(ino) {
            Some(kind) => kind,
            None => return Err(FsError::not_found(&k)),
        };
        if kind != Kind::File {
            if set.size.is_some() {
                let errno = if kind == Kind::Dir { libc::EISDIR } else { libc::EINVAL };
                return Err(FsError::new(errno, format!("`{k}` is not a regular file")));
            }
            let (mut posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
            apply(&mut posix);
            self.store.put(&session, &k, Bytes::new(), posix.to_metadata()).await?;
            return Ok(self.entry(ino, posix, 0));
        }
        self.store.check(&session, Op::Write, &k)?;
        let (file, _) = self.attach(ino, &session, &k).await?;
        if self.options.shared {
            // Changed here: the next open has the kernel read it again.
            self.page_versions.lock().insert(ino, None);
        }
        let result = async {
            let mut state = file.state.lock().await;
            if state.hand_over(&self.store, &session, &k, &self.options.defaults).await? {
                file.publish(&state, true);
            }
            if let Some(size) = set.size {
                if size > state.size() {
                    // Growing past a quota is refused (nothing changes).
                    self.store.check_quota(&session, &k, size as i64 - state.base.1 as i64).await?;
                }
                if size != state.size() || size == 0 {
                    state.set_size(&self.store, &session, &k, &self.spool, size).await?;
                }
                state.posix.touch_content();
            }
            apply(&mut state.posix);
            if set.atime.is_some() || set.mtime.is_some() {
                state.times_explicit = true;
            }
            if set.size.is_some() && set.mtime.is_none() {
                state.posix.mtime = now;
            }
            state.dirty = true;
            state.writer = Some(session.clone());
            file.publish(&state, set.size.is_some());
            Ok::<_, FsError>(())
        }
        .await;
        let released = self.close_file(ino, &file, &session).await;
        result?;
        released?;
        let (posix, size, _) = file.snapshot();
        Ok(self.entry(ino, posix, size))
    }

    /// The target of symlink `ino`.
    pub async fn readlink(&self, caller: &Caller, ino: u64) -> FsResult<Vec<u8>> {
        let k = self.inodes.key(ino)?;
        let session = self.session(caller);
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        match (posix.kind, posix.target) {
            (Kind::Symlink, Some(target)) => Ok(target.into_bytes()),
            _ => Err(FsError::new(libc::EINVAL, format!("`{k}` is not a symbolic link"))),
        }
    }

    /// Creates `node` named `name` in `parent`.
    async fn make_node(&self, caller: &Caller, parent: u64, name: &OsStr, node: NewNode) -> FsResult<Entry> {
        let NewNode { kind, mode, rdev, target } = node;
        let name = utf8(name)?;
        let k = self.inodes.child_key(parent, name)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        if self.resolve(&session, &k).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{k}` exists")));
        }
        let (uid, gid, mode) = Self::owner_for_new(caller, &parent_posix, kind, mode);
        let mut posix = PosixMeta::new(kind, mode, uid, gid);
        posix.rdev = rdev;
        posix.target = target;
        self.store.put(&session, &k, Bytes::new(), posix.to_metadata()).await?;
        self.touch_dir(&session, parent, parent_posix).await;
        let ino = self.inodes.lookup(parent, name, kind);
        Ok(self.entry(ino, posix, 0))
    }

    /// Creates a regular file, fifo, socket or device node.
    pub async fn mknod(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        let kind = Kind::from_mode(mode)
            .filter(|k| *k != Kind::Dir && *k != Kind::Symlink)
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("mknod cannot make mode {mode:o}")))?;
        self.make_node(caller, parent, name, NewNode { kind, mode, rdev, target: None }).await
    }

    /// Creates a directory.
    pub async fn mkdir(&self, caller: &Caller, parent: u64, name: &OsStr, mode: u32) -> FsResult<Entry> {
        self.make_node(caller, parent, name, NewNode { kind: Kind::Dir, mode, rdev: 0, target: None }).await
    }

    /// Creates a symbolic link to `target`.
    pub async fn symlink(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> FsResult<Entry> {
        let target = target
            .to_str()
            .ok_or_else(|| FsError::new(libc::EINVAL, "the symlink target is not UTF-8"))?
            .to_owned();
        if target.len() >= libc::PATH_MAX as usize {
            return Err(FsError::new(libc::ENAMETOOLONG, "the symlink target is longer than PATH_MAX"));
        }
        self.make_node(
            caller,
            parent,
            name,
            NewNode { kind: Kind::Symlink, mode: 0o777, rdev: 0, target: Some(target) },
        )
        .await
    }

    /// Removes a file (not a directory).
    pub async fn unlink(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        let name = utf8(name)?;
        let k = self.inodes.child_key(parent, name)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        if posix.kind == Kind::Dir {
            return Err(FsError::new(libc::EISDIR, format!("`{k}` is a directory")));
        }
        let open = self.inodes.child(parent, name).and_then(|ino| self.inodes.open_file(ino));
        let mut guard = match &open {
            Some(file) => Some(file.state.lock().await),
            None => None,
        };
        if let Some(state) = guard.as_mut() {
            // Handles still open keep reading the content after the key goes.
            if !matches!(state.content, Content::Spooled(_)) {
                state.spool(&self.store, &session, &k, &self.spool).await?;
            }
        }
        self.store.delete(&session, &k).await?;
        if let (Some(state), Some(file)) = (guard.as_mut(), &open) {
            state.unlinked = true;
            file.publish(state, false);
        }
        drop(guard);
        self.inodes.unlink(parent, name);
        self.touch_dir(&session, parent, parent_posix).await;
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        let name = utf8(name)?;
        let k = self.inodes.child_key(parent, name)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let (posix, _) = self.resolve(&session, &k).await?.ok_or_else(|| FsError::not_found(&k))?;
        if posix.kind != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR, format!("`{k}` is not a directory")));
        }
        if self.store.has_children(&session, &format!("{k}/")).await? {
            return Err(FsError::new(libc::ENOTEMPTY, format!("`{k}` is not empty")));
        }
        self.store.delete(&session, &k).await?;
        self.inodes.unlink(parent, name);
        self.touch_dir(&session, parent, parent_posix).await;
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`.
    /// `flags` are `renameat2` flags: `RENAME_NOREPLACE` is honoured,
    /// `RENAME_EXCHANGE` and `RENAME_WHITEOUT` are refused with `EINVAL`.
    #[allow(clippy::too_many_arguments)]
    pub async fn rename(
        &self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(FsError::new(libc::EINVAL, "RENAME_EXCHANGE and RENAME_WHITEOUT are not supported"));
        }
        let (name, new_name) = (utf8(name)?, utf8(new_name)?);
        let from = self.inodes.child_key(parent, name)?;
        let to = self.inodes.child_key(new_parent, new_name)?;
        let session = self.session(caller);
        let parent_posix = self.dir_posix(&session, parent).await?;
        let new_parent_posix = if new_parent == parent {
            parent_posix.clone()
        } else {
            self.dir_posix(&session, new_parent).await?
        };
        let (src, _) = self.resolve(&session, &from).await?.ok_or_else(|| FsError::not_found(&from))?;
        if from == to {
            return Ok(());
        }
        let dst = self.resolve(&session, &to).await?;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("`{to}` exists")));
        }
        let src_ino = self.inodes.child(parent, name);
        if src.kind == Kind::Dir {
            if to.as_str().starts_with(&format!("{from}/")) {
                return Err(FsError::new(libc::EINVAL, format!("cannot move `{from}` into itself")));
            }
            if let Some((dst, _)) = &dst {
                if dst.kind != Kind::Dir {
                    return Err(FsError::new(libc::ENOTDIR, format!("`{to}` is not a directory")));
                }
                if self.store.has_children(&session, &format!("{to}/")).await? {
                    return Err(FsError::new(libc::ENOTEMPTY, format!("`{to}` is not empty")));
                }
            }
            // Commits of files open below wait, then use the new paths.
            let open = src_ino.map(|ino| self.inodes.open_files_within(ino)).unwrap_or_default();
            let mut guards = Vec::with_capacity(open.len());
            for (ino, file) in &open {
                let mut state = file.state.lock().await;
                // A stream publishes under the key it started with: finish it first.
                if let Ok(k) = self.inodes.key(*ino) {
                    state.settle(&self.store, &session, &k).await?;
                }
                guards.push(state);
            }
            self.store.check(&session, Op::Write, &to)?;
            if dst.is_some() {
                self.store.delete(&session, &to).await?;
            }
            for old in self.store.subtree(&session, &from).await? {
                let new = key(format!("{to}{}", &old.as_str()[from.len()..]))?;
                self.store.rename(&session, &old, &new).await?;
            }
            self.inodes.rename(parent, name, new_parent, new_name);
            drop(guards);
        } else {
            if let Some((dst, _)) = &dst {
                if dst.kind == Kind::Dir {
                    return Err(FsError::new(libc::EISDIR, format!("`{to}` is a directory")));
                }
            }
            let src_file = src_ino.and_then(|ino| self.inodes.open_file(ino));
            let dst_file = self.inodes.child(new_parent, new_name).and_then(|ino| self.inodes.open_file(ino));
            let mut src_guard = match &src_file {
                Some(file) => Some(file.state.lock().await),
                None => None,
            };
            let mut dst_guard = match &dst_file {
                Some(file) if !src_file.as_ref().is_some_and(|s| Arc::ptr_eq(s, file)) => {
                    Some(file.state.lock().await)
                }
                _ => None,
            };
            if let Some(state) = dst_guard.as_mut() {
                if !matches!(state.content, Content::Spooled(_)) {
                    state.spool(&self.store, &session, &to, &self.spool).await?;
                }
            }
            // A file created but not yet in the store is written first, as
            // its writer; refused, the rename moves what the store holds.
            if let Some(state) = src_guard.as_mut() {
                state.hand_over(&self.store, &session, &from, &self.options.defaults).await?;
                state.commit(&self.store, &session, &from).await?;
            }
            self.store.rename(&session, &from, &to).await?;
            if let (Some(state), Some(file)) = (dst_guard.as_mut(), &dst_file) {
                state.unlinked = true;
                file.publish(state, false);
            }
            self.inodes.rename(parent, name, new_parent, new_name);
            drop(src_guard);
            drop(dst_guard);
        }
        self.touch_dir(&session, parent, parent_posix).await;
        if new_parent != parent {
            self.touch_dir(&session, new_parent, new_parent_posix).await;
        }
        Ok(())
    }

    /// Hard links are not supported: every key has one name.
    pub async fn link(
        &self,
        _caller: &Caller,
        _ino: u64,
        _new_parent: u64,
        _new_name: &OsStr,
    ) -> FsResult<Entry> {
        Err(FsError::new(libc::ENOTSUP, "hard links are not supported: a key has exactly one name"))
    }
}
