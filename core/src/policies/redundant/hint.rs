//! [`Hint`]: what is known about one key's copies beyond what the members
//! say, kept by the key table and written to the hint log.

use std::collections::BTreeMap;

/// What is known about a key's copies beyond what the members say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Hint {
    /// Member index -> highest revision it may be missing.
    pub(super) lagging: BTreeMap<usize, u64>,
    /// Highest revision of a delete that may not be everywhere yet.
    pub(super) tombstone: Option<u64>,
}

impl Hint {
    /// Whether a copy of revision `rev` on `member` is current as far as
    /// this process knows.
    pub(super) fn trusts(&self, member: usize, rev: u64) -> bool {
        self.lagging.get(&member).is_none_or(|missed| rev >= *missed)
    }

    /// Whether the latest write any member missed was a delete.
    pub(super) fn latest_is_delete(&self) -> bool {
        self.tombstone.is_some_and(|t| self.lagging.values().all(|missed| *missed <= t))
    }
}
