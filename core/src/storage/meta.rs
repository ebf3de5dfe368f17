use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::key::Key;

/// A small string map stored with a value: POSIX mode, owner, times and
/// symlink targets from the FUSE front end, or anything a caller wants.
pub type Metadata = BTreeMap<String, String>;

/// What `stat` returns about a stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key.
    pub key: Key,
    /// Size of the value in bytes.
    pub size: u64,
    /// When the value was last written.
    pub modified: SystemTime,
    /// Changes whenever the value changes (a counter or an etag); opaque.
    pub version: String,
    /// The caller's metadata map, as last written.
    pub metadata: Metadata,
}

/// Options for `put` and `write`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Metadata stored with the value, replacing the previous map.
    pub metadata: Metadata,
    /// Fail with `AlreadyExists` if the key exists (see
    /// [`Capabilities::conditional_put`](crate::Capabilities::conditional_put)).
    pub if_not_exists: bool,
}

impl PutOptions {
    /// Options carrying `metadata`.
    pub fn with_metadata(metadata: Metadata) -> Self {
        PutOptions { metadata, ..Default::default() }
    }
}
