//! A value kept whole in one local file, handed out for reading.

use std::fmt::Debug;
use std::fs::File;

use super::ObjectMeta;

/// A value stored whole in one file on this machine, opened for reading:
/// what [`Storage::open_file`](super::Storage::open_file) hands out, so
/// that a reader (the mount's passthrough reads) can read the bytes
/// straight from the file.
///
/// While it lives, the file holds exactly the value described by
/// [`meta`](LocalFile::meta): the backend changes it in place for nobody
/// (a patch of the value writes a new copy instead), and an overwrite or a
/// delete of the key leaves this file as it was. The holder so reads the
/// value as it was when opened.
///
/// ```
/// use tierfs_core::{Key, LocalStorage, PutOptions, Storage};
/// use std::os::unix::fs::FileExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = LocalStorage::open("local", dir.path(), Default::default())?;
/// let key = Key::new("big")?;
/// store.put(&key, vec![7u8; 1 << 20].into(), PutOptions::default()).await?;
/// let opened = store.open_file(&key).await?.expect("a large value is one file");
/// let mut head = [0u8; 4];
/// opened.file().read_exact_at(&mut head, 0)?;
/// assert_eq!(head, [7; 4]);
/// assert_eq!(opened.meta().size, 1 << 20);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    meta: ObjectMeta,
    _pin: Box<dyn Debug + Send + Sync>,
}

impl LocalFile {
    /// `file`, holding the value `meta` describes; `pin` keeps the backend
    /// from changing the file in place until it is dropped.
    pub fn new(file: File, meta: ObjectMeta, pin: Box<dyn Debug + Send + Sync>) -> Self {
        LocalFile { file, meta, _pin: pin }
    }

    /// The open file: its bytes are the value's, its length the value's size.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The value's metadata, size and version when it was opened.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
}
