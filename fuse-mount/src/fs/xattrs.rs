//! Extended attributes of the `user.` namespace, kept in the object's
//! metadata map as `xattr.user.NAME` with the value hex-encoded (so any
//! bytes survive every backend, S3 headers included). Changing one is a
//! metadata-only update: the content is never rewritten.
//!
//! `user.tierfs.class` is not stored there: it reads and sets the storage
//! class of a file, or of a directory (inherited by everything below it
//! that has none of its own). Reading gives the class in force, inherited
//! or not; listing names it only where it was set; setting it moves the
//! data in the background; removing it (or setting it empty) goes back to
//! inheriting.
//!
//! Other namespaces (`security.`, `trusted.`, `system.`, POSIX ACLs) are
//! not stored: reads find nothing and writes are refused with `ENOTSUP`,
//! which `cp -a`, `rsync -X` and `tar --xattrs` take as "not supported here"
//! for those names. Symbolic links and special files hold none (Linux
//! refuses `user.` attributes on them too).

use std::ffi::OsStr;
use std::time::SystemTime;

use bytes::Bytes;
use tierfs_core::access::StorageOperationType as Op;
use tierfs_core::{Key, Metadata};

use super::attr::Kind;
use super::inode::ROOT;
use super::{Caller, FsError, FsResult, TierFs};
use crate::fs::store::is_not_found;

/// Prefix of the metadata entries that hold extended attributes.
const PREFIX: &str = "xattr.";
/// The only namespace stored.
const NAMESPACE: &str = "user.";
/// Longest attribute name (Linux's `XATTR_NAME_MAX`).
const NAME_MAX: usize = 255;
/// Bytes of names and values one file may hold: object stores keep
/// metadata in request headers (AWS allows 2 KiB of user metadata, others
/// some more), and every listing and `stat` carries it.
pub const TOTAL_MAX: usize = 4096;

/// The attribute that is a file's or a directory's storage class.
pub const CLASS_ATTRIBUTE: &str = "user.tierfs.class";

/// What `setxattr` may do to an existing or missing attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    /// Create or replace.
    Any,
    /// Fail with `EEXIST` if present (`XATTR_CREATE`).
    Create,
    /// Fail with `ENODATA` if missing (`XATTR_REPLACE`).
    Replace,
}

impl SetMode {
    /// The mode of `setxattr`'s `flags`.
    pub fn from_flags(flags: i32) -> Self {
        if flags & libc::XATTR_CREATE != 0 {
            SetMode::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            SetMode::Replace
        } else {
            SetMode::Any
        }
    }
}

fn entry_name(name: &OsStr) -> FsResult<String> {
    let name = name.to_str().ok_or_else(|| FsError::new(libc::EINVAL, "attribute names are UTF-8 here"))?;
    if name.len() > NAME_MAX {
        return Err(FsError::new(libc::ERANGE, format!("attribute names are at most {NAME_MAX} bytes")));
    }
    if !name.starts_with(NAMESPACE) || name.len() == NAMESPACE.len() {
        return Err(FsError::new(libc::ENOTSUP, format!("only `user.` attributes are stored, not `{name}`")));
    }
    Ok(format!("{PREFIX}{name}"))
}

fn no_attribute(name: &str) -> FsError {
    FsError::new(libc::ENODATA, format!("no attribute `{}`", &name[PREFIX.len()..]))
}

/// Bytes of names and values held in `metadata`.
fn held(metadata: &Metadata) -> usize {
    metadata.iter().filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|n| n.len() + v.len() / 2)).sum()
}

impl TierFs {
    /// The value of attribute `name` of `ino`.
    pub async fn getxattr(&self, caller: &Caller, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        if name == CLASS_ATTRIBUTE {
            let (class, _) = self.class_of(caller, ino).await?;
            return class
                .map(String::into_bytes)
                .ok_or_else(|| FsError::new(libc::ENODATA, "no storage class"));
        }
        let entry = match entry_name(name) {
            Ok(entry) => entry,
            // Nothing outside `user.` is ever stored, so nothing is found.
            Err(e) if e.errno() == libc::ENOTSUP => return Err(FsError::new(libc::ENODATA, "not stored")),
            Err(e) => return Err(e),
        };
        let metadata = self.attribute_map(caller, ino).await?;
        let value = metadata.get(&entry).ok_or_else(|| no_attribute(&entry))?;
        hex::decode(value).map_err(|_| FsError::new(libc::EIO, format!("the stored `{entry}` is not hex")))
    }

    /// The names of the attributes of `ino`, each followed by a NUL byte
    /// (with `class_only`, only the storage class's).
    pub async fn listxattr(&self, caller: &Caller, ino: u64, class_only: bool) -> FsResult<Vec<u8>> {
        let mut names = Vec::new();
        if matches!(self.class_of(caller, ino).await?, (Some(_), true)) {
            names.extend_from_slice(CLASS_ATTRIBUTE.as_bytes());
            names.push(0);
        }
        if class_only {
            return Ok(names);
        }
        let metadata = self.attribute_map(caller, ino).await?;
        for name in metadata.keys().filter_map(|k| k.strip_prefix(PREFIX)) {
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        Ok(names)
    }

    /// Sets attribute `name` of `ino` to `value`.
    pub async fn setxattr(
        &self,
        caller: &Caller,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        mode: SetMode,
    ) -> FsResult<()> {
        if name == CLASS_ATTRIBUTE {
            let class = std::str::from_utf8(value)
                .map_err(|_| FsError::new(libc::EINVAL, "a storage class name is UTF-8 text"))?
                .trim_end_matches(['\n', '\0']);
            let (current, own) = self.class_of(caller, ino).await?;
            match (mode, own && current.is_some()) {
                (SetMode::Create, true) => return Err(FsError::new(libc::EEXIST, "a storage class is set")),
                (SetMode::Replace, false) => {
                    return Err(FsError::new(libc::ENODATA, "no storage class is set"))
                }
                _ => {}
            }
            return self.set_class(caller, ino, (!class.is_empty()).then_some(class)).await;
        }
        let entry = entry_name(name)?;
        let encoded = hex::encode(value);
        self.change_attributes(caller, ino, move |metadata| {
            match (mode, metadata.contains_key(&entry)) {
                (SetMode::Create, true) => return Err(FsError::new(libc::EEXIST, "the attribute exists")),
                (SetMode::Replace, false) => return Err(no_attribute(&entry)),
                _ => {}
            }
            let before =
                held(metadata) - metadata.get(&entry).map_or(0, |v| entry.len() - PREFIX.len() + v.len() / 2);
            if before + entry.len() - PREFIX.len() + value.len() > TOTAL_MAX {
                return Err(FsError::new(
                    libc::ENOSPC,
                    format!(
                        "a file holds at most {TOTAL_MAX} bytes of extended attributes (names and values)"
                    ),
                ));
            }
            metadata.insert(entry, encoded);
            Ok(())
        })
        .await
    }

    /// Removes attribute `name` of `ino`.
    pub async fn removexattr(&self, caller: &Caller, ino: u64, name: &OsStr) -> FsResult<()> {
        if name == CLASS_ATTRIBUTE {
            if !matches!(self.class_of(caller, ino).await?, (Some(_), true)) {
                return Err(FsError::new(libc::ENODATA, "no storage class is set here"));
            }
            return self.set_class(caller, ino, None).await;
        }
        let entry = entry_name(name).map_err(|e| match e.errno() {
            libc::ENOTSUP => FsError::new(libc::ENODATA, "not stored"),
            _ => e,
        })?;
        self.change_attributes(caller, ino, move |metadata| match metadata.remove(&entry) {
            Some(_) => Ok(()),
            None => Err(no_attribute(&entry)),
        })
        .await
    }

    /// The storage class in force on `ino` (a file's, or a directory's for
    /// what is below it), and whether it was set there (not inherited).
    async fn class_of(&self, caller: &Caller, ino: u64) -> FsResult<(Option<String>, bool)> {
        let session = self.session(caller);
        if ino == ROOT {
            return Ok((session.prefix_class(""), session.prefix_class_is_own("")));
        }
        let k = self.inodes.key(ino)?;
        self.store.check(&session, Op::Read, &k)?;
        match self.inodes.kind(ino) {
            Some(Kind::Dir) => {
                let prefix = format!("{k}/");
                Ok((session.prefix_class(&prefix), session.prefix_class_is_own(&prefix)))
            }
            Some(Kind::File) => {
                let info = session.storage_class(&k).await?;
                let own = info.class.is_some() && info.inherited_from.is_none();
                Ok((info.class, own))
            }
            _ => Ok((None, false)),
        }
    }

    /// Sets (or, with `None`, takes off) the storage class of `ino`.
    async fn set_class(&self, caller: &Caller, ino: u64, class: Option<&str>) -> FsResult<()> {
        let session = self.session(caller);
        if ino == ROOT {
            return Ok(session.set_prefix_class("", class).await?);
        }
        let k = self.inodes.key(ino)?;
        self.store.check(&session, Op::Write, &k)?;
        match self.inodes.kind(ino) {
            Some(Kind::Dir) => session.set_prefix_class(&format!("{k}/"), class).await?,
            Some(Kind::File) => session.set_storage_class(&k, class).await?,
            _ => return Err(FsError::new(libc::EPERM, "only files and directories have a storage class")),
        }
        self.store.changed();
        Ok(())
    }

    /// The metadata map of `ino` as the caller may read it (an open file's
    /// own, with changes not yet committed).
    async fn attribute_map(&self, caller: &Caller, ino: u64) -> FsResult<Metadata> {
        if ino == ROOT {
            return Ok(Metadata::new());
        }
        let k = self.inodes.key(ino)?;
        let session = self.session(caller);
        self.store.check(&session, Op::Read, &k)?;
        if let Some(file) = self.inodes.open_file(ino) {
            return Ok(file.state.lock().await.metadata.clone());
        }
        match self.store.stat(&session, &k).await {
            Ok(meta) => Ok(meta.metadata),
            // A directory known only by what is below it holds none.
            Err(e) if is_not_found(&e) && self.inodes.kind(ino) == Some(Kind::Dir) => Ok(Metadata::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `change` to the metadata of `ino` and stores it as a
    /// metadata-only update (through the open file's state for files).
    async fn change_attributes(
        &self,
        caller: &Caller,
        ino: u64,
        change: impl FnOnce(&mut Metadata) -> FsResult<()>,
    ) -> FsResult<()> {
        if ino == ROOT {
            return Err(FsError::new(libc::ENOTSUP, "the mount's root holds no extended attributes"));
        }
        let k = self.inodes.key(ino)?;
        let session = self.session(caller);
        self.store.check(&session, Op::Write, &k)?;
        match self.inodes.kind(ino) {
            Some(Kind::File) => {}
            Some(Kind::Dir) => return self.change_dir_attributes(&session, &k, change).await,
            Some(_) => {
                return Err(FsError::new(libc::EPERM, "only files and directories hold `user.` attributes"))
            }
            None => return Err(FsError::not_found(&k)),
        }
        let (file, _) = self.attach(ino, &session, &k).await?;
        let result = async {
            let mut state = file.state.lock().await;
            if state.hand_over(&self.store, &session, &k, &self.options.defaults).await? {
                file.publish(&state, true);
            }
            change(&mut state.metadata)?;
            state.posix.ctime = SystemTime::now();
            state.dirty = true;
            state.writer = Some(session.clone());
            file.publish(&state, false);
            Ok::<_, FsError>(())
        }
        .await;
        let released = self.close_file(ino, &file, &session).await;
        result?;
        released
    }

    async fn change_dir_attributes(
        &self,
        session: &tierfs_core::Session,
        k: &Key,
        change: impl FnOnce(&mut Metadata) -> FsResult<()>,
    ) -> FsResult<()> {
        let (mut posix, _) = self.resolve(session, k).await?.ok_or_else(|| FsError::not_found(k))?;
        posix.ctime = SystemTime::now();
        match self.store.stat(session, k).await {
            Ok(meta) => {
                let mut metadata = meta.metadata;
                change(&mut metadata)?;
                posix.write_to(&mut metadata);
                self.store.set_metadata(session, k, metadata).await?;
            }
            // No marker yet (a directory known by what is below it): make one.
            Err(e) if is_not_found(&e) => {
                let mut metadata = Metadata::new();
                change(&mut metadata)?;
                posix.write_to(&mut metadata);
                self.store.put(session, k, Bytes::new(), metadata).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.store.changed();
        Ok(())
    }
}
