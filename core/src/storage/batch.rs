use bytes::Bytes;

use crate::key::Key;
use crate::storage::Metadata;

/// One operation inside [`Storage::batch`](crate::Storage::batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key` with `metadata`.
    Put {
        /// The key.
        key: Key,
        /// The new value.
        value: Bytes,
        /// The new metadata map.
        metadata: Metadata,
        /// Fail the whole batch with `AlreadyExists` if the key exists.
        if_not_exists: bool,
    },
    /// Remove `key` (a missing key is not an error).
    Delete {
        /// The key.
        key: Key,
    },
}

impl BatchOp {
    /// A put with empty metadata.
    pub fn put(key: Key, value: impl Into<Bytes>) -> Self {
        BatchOp::Put { key, value: value.into(), metadata: Metadata::new(), if_not_exists: false }
    }

    /// A put that fails the whole batch if `key` exists.
    pub fn put_if_absent(key: Key, value: impl Into<Bytes>) -> Self {
        BatchOp::Put { key, value: value.into(), metadata: Metadata::new(), if_not_exists: true }
    }

    /// A delete.
    pub fn delete(key: Key) -> Self {
        BatchOp::Delete { key }
    }

    /// The key this operation touches.
    pub fn key(&self) -> &Key {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}
