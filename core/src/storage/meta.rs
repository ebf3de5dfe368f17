use std::collections::{BTreeMap, BTreeSet};
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
    /// The storage class to keep the key in (`persistent`, `distributed`,
    /// `cache_only` or a configured `[classes.NAME]`); the key keeps it
    /// through later writes that name none. `None`: the class the key
    /// already has, else its prefix's, else its route's placement. Only
    /// the manager ([`Session`](crate::Session)) reads it; a backend
    /// ignores it.
    pub storage_class: Option<String>,
}

impl PutOptions {
    /// Options carrying `metadata`.
    pub fn with_metadata(metadata: Metadata) -> Self {
        PutOptions { metadata, ..Default::default() }
    }
}

/// A change to a value's metadata map, for
/// [`Storage::set_metadata`](crate::Storage::set_metadata): entries to set,
/// names to remove, or a whole new map. The value's bytes are not touched.
///
/// ```
/// use tierfs_core::{Metadata, MetadataChanges};
///
/// let mut map = Metadata::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
/// MetadataChanges::new().set("a", "10").remove("b").apply(&mut map);
/// assert_eq!(map, Metadata::from([("a".to_owned(), "10".to_owned())]));
///
/// MetadataChanges::replace_with(Metadata::new()).apply(&mut map);
/// assert!(map.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChanges {
    /// Entries added or replaced.
    pub set: Metadata,
    /// Names removed (a name also in `set` is set: removals apply first).
    pub remove: BTreeSet<String>,
    /// Drop every entry first, so the map becomes `set`.
    pub replace: bool,
}

impl MetadataChanges {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map becomes exactly `map`.
    pub fn replace_with(map: Metadata) -> Self {
        MetadataChanges { set: map, remove: BTreeSet::new(), replace: true }
    }

    /// Also sets `name` to `value`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.insert(name.into(), value.into());
        self
    }

    /// Also removes `name`.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.insert(name.into());
        self
    }

    /// Applies the changes to `map`.
    pub fn apply(&self, map: &mut Metadata) {
        if self.replace {
            map.clear();
        }
        for name in &self.remove {
            map.remove(name);
        }
        for (name, value) in &self.set {
            map.insert(name.clone(), value.clone());
        }
    }

    /// `map` with the changes applied.
    pub fn applied_to(&self, mut map: Metadata) -> Metadata {
        self.apply(&mut map);
        map
    }
}

/// When a conditional update goes ahead. A failed condition is a
/// [`Conflict`](crate::ErrorKind::Conflict) error and changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Condition {
    /// Whenever the key exists (a missing key is `NotFound`).
    #[default]
    Exists,
    /// Only while the value's [`ObjectMeta::version`] is this one.
    VersionIs(String),
}

impl Condition {
    /// Checks the condition against the current state of the key.
    pub fn check(&self, current: &ObjectMeta) -> crate::Result<()> {
        match self {
            Condition::Exists => Ok(()),
            Condition::VersionIs(v) if *v == current.version => Ok(()),
            Condition::VersionIs(v) => Err(crate::Error::new(
                crate::ErrorKind::Conflict,
                format!(
                    "the value changed: its version is `{}`, the update asked for `{v}`; read it again and retry",
                    current.version
                ),
            )
            .with_key(current.key.as_str())),
        }
    }
}
