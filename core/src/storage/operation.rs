//! [`Operation`]: the calls of the [`Storage`](super::Storage) trait by
//! name, the one label metrics, tracing spans, audit records and access
//! checks derive theirs from.

use crate::access::StorageOperationType;

/// A call of the [`Storage`](super::Storage) trait.
///
/// ```
/// use tierfs_core::access::StorageOperationType;
/// use tierfs_core::Operation;
///
/// assert_eq!(Operation::GetRange.as_str(), "get_range");
/// // Every way of reading a key is checked and audited as a read.
/// assert_eq!(Operation::GetRange.access(), Some(StorageOperationType::Read));
/// assert_eq!(Operation::GetRange.audit_label(), "read");
/// // A rename is checked on both of its keys, not as one class.
/// assert_eq!(Operation::Rename.access(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `get`
    Get,
    /// `get_range`
    GetRange,
    /// `put`
    Put,
    /// `delete`
    Delete,
    /// `stat`
    Stat,
    /// `list`
    List,
    /// `batch`
    Batch,
    /// `read` (streamed)
    Read,
    /// `write` (streamed)
    Write,
    /// `rename`
    Rename,
    /// `set_metadata`
    SetMetadata,
    /// `patch`
    Patch,
    /// `set_storage_class` (of a key or a prefix)
    SetClass,
}

impl Operation {
    /// Every operation, in a fixed order (the index metrics keep them by).
    pub const ALL: [Operation; 13] = [
        Operation::Get,
        Operation::GetRange,
        Operation::Put,
        Operation::Delete,
        Operation::Stat,
        Operation::List,
        Operation::Batch,
        Operation::Read,
        Operation::Write,
        Operation::Rename,
        Operation::SetMetadata,
        Operation::Patch,
        Operation::SetClass,
    ];

    /// The method's name: the label of metrics and tracing spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::GetRange => "get_range",
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::Stat => "stat",
            Operation::List => "list",
            Operation::Batch => "batch",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Rename => "rename",
            Operation::SetMetadata => "set_metadata",
            Operation::SetClass => "set_class",
            Operation::Patch => "patch",
        }
    }

    /// What access control checks it as; `None` for a rename, which is
    /// checked as a read and a delete of its source and a write of its
    /// target.
    pub fn access(self) -> Option<StorageOperationType> {
        match self {
            Operation::Get | Operation::GetRange | Operation::Stat | Operation::Read => {
                Some(StorageOperationType::Read)
            }
            Operation::Put
            | Operation::Write
            | Operation::SetMetadata
            | Operation::Patch
            | Operation::SetClass => Some(StorageOperationType::Write),
            Operation::Delete => Some(StorageOperationType::Delete),
            Operation::List => Some(StorageOperationType::List),
            Operation::Batch => Some(StorageOperationType::Batch),
            Operation::Rename => None,
        }
    }

    /// The operation audit records name: reads of a value (whole, a
    /// range, streamed) are `read`, writes (whole, streamed) are `write`;
    /// the others their own name.
    pub fn audit_label(self) -> &'static str {
        match self {
            Operation::Get | Operation::GetRange | Operation::Read => "read",
            Operation::Put | Operation::Write => "write",
            other => other.as_str(),
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_labels_are_unique() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        let labels: std::collections::BTreeSet<_> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), Operation::ALL.len());
    }
}
