//! Revisions: the hybrid clock that stamps every write, and how a revision
//! travels in a copy's metadata without disturbing the caller's own entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::storage::{Metadata, MetadataChanges, ObjectMeta};

/// The metadata entry that carries a copy's revision on the members.
///
/// Callers never see it: [`RedundantStorage`](super::RedundantStorage)
/// removes it from every metadata map it returns. A caller entry whose name
/// starts with `tierfs.rev` is stored escaped (prefixed with `tierfs.rev.`)
/// and comes back unchanged, so nothing a caller writes is lost or mistaken
/// for a revision, and redundant sets can be nested.
pub const REVISION_KEY: &str = "tierfs.rev";

/// Prefix of an escaped caller entry.
const ESCAPE: &str = "tierfs.rev.";

/// Hands out revisions: `max(now in nanoseconds, last + 1)`, so they are
/// strictly increasing within the process and roughly ordered by wall-clock
/// time across processes.
#[derive(Debug, Default)]
pub(super) struct RevisionClock {
    last: AtomicU64,
}

impl RevisionClock {
    /// A revision greater than every one handed out or observed before.
    pub(super) fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
            .unwrap_or(0);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }

    /// Moves the clock past `rev` (read from a member, perhaps written by
    /// another process with a clock ahead of ours), so later writes of this
    /// process outrank it.
    pub(super) fn observe(&self, rev: u64) {
        self.last.fetch_max(rev, Ordering::AcqRel);
    }
}

fn escape(key: &str) -> String {
    if key.starts_with(REVISION_KEY) {
        format!("{ESCAPE}{key}")
    } else {
        key.to_owned()
    }
}

/// The metadata stored on members for a caller's `metadata` written at `rev`.
pub(super) fn encode(metadata: &Metadata, rev: u64) -> Metadata {
    let mut stored: Metadata = metadata.iter().map(|(k, v)| (escape(k), v.clone())).collect();
    stored.insert(REVISION_KEY.to_owned(), rev.to_string());
    stored
}

/// The change to make on members for a caller's `changes` made at `rev`:
/// the caller's names escaped, and the revision set.
pub(super) fn encode_changes(changes: &MetadataChanges, rev: u64) -> MetadataChanges {
    let mut stored = MetadataChanges {
        set: changes.set.iter().map(|(k, v)| (escape(k), v.clone())).collect(),
        remove: changes.remove.iter().map(|k| escape(k)).collect(),
        replace: changes.replace,
    };
    stored.set.insert(REVISION_KEY.to_owned(), rev.to_string());
    stored
}

/// The revision of a stored copy; 0 for a copy written around the layer
/// (no or an unreadable revision), which every revised copy outranks.
pub(super) fn revision(stored: &Metadata) -> u64 {
    stored.get(REVISION_KEY).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The caller's metadata inside a stored map.
pub(super) fn decode(stored: &Metadata) -> Metadata {
    stored
        .iter()
        .filter(|(k, _)| k.as_str() != REVISION_KEY)
        .map(|(k, v)| {
            let key = match k.strip_prefix(ESCAPE) {
                Some(inner) if inner.starts_with(REVISION_KEY) => inner.to_owned(),
                _ => k.clone(),
            };
            (key, v.clone())
        })
        .collect()
}

/// The version string shown to callers: the revision, identical on every
/// member; for an unrevised copy, the member's own version.
pub(super) fn version(rev: u64, member_version: &str) -> String {
    if rev > 0 {
        rev.to_string()
    } else {
        format!("unrevised-{member_version}")
    }
}

/// A member's description of a copy, as callers of the layer see it.
pub(super) fn public_meta(raw: ObjectMeta) -> ObjectMeta {
    let rev = revision(&raw.metadata);
    ObjectMeta {
        version: version(rev, &raw.version),
        metadata: decode(&raw.metadata),
        key: raw.key,
        size: raw.size,
        modified: raw.modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn clock_is_strictly_increasing_and_observes() {
        let clock = RevisionClock::default();
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
        clock.observe(b + 1_000_000_000_000);
        assert!(clock.next() > b + 1_000_000_000_000);
    }

    #[test]
    fn caller_metadata_round_trips_even_with_reserved_names() {
        let user = meta(&[
            ("posix.mode", "100644"),
            ("tierfs.rev", "caller's own"),
            ("tierfs.rev.x", "also"),
            ("tierfs.revision", "too"),
        ]);
        let stored = encode(&user, 42);
        assert_eq!(revision(&stored), 42);
        assert_eq!(stored.get("tierfs.rev").map(String::as_str), Some("42"));
        assert_eq!(decode(&stored), user);
        // Nested sets: the outer layer's stored map is the inner layer's caller map.
        let inner = encode(&stored, 43);
        assert_eq!(revision(&inner), 43);
        assert_eq!(decode(&inner), stored);
    }

    #[test]
    fn unrevised_copies_rank_lowest() {
        assert_eq!(revision(&meta(&[("a", "b")])), 0);
        assert_eq!(revision(&meta(&[("tierfs.rev", "garbage")])), 0);
        assert_eq!(version(0, "7"), "unrevised-7");
        assert_eq!(version(9, "7"), "9");
    }

    #[test]
    fn changes_are_escaped_and_stamped() {
        let stored = encode(&meta(&[("tierfs.rev.x", "old"), ("a", "1"), ("b", "2")]), 1);
        let changes = MetadataChanges::new().set("tierfs.rev.x", "new").remove("b");
        let after = encode_changes(&changes, 5).applied_to(stored);
        assert_eq!(revision(&after), 5);
        assert_eq!(decode(&after), meta(&[("tierfs.rev.x", "new"), ("a", "1")]));
        let replaced =
            encode_changes(&MetadataChanges::replace_with(meta(&[("c", "3")])), 6).applied_to(after);
        assert_eq!(revision(&replaced), 6);
        assert_eq!(decode(&replaced), meta(&[("c", "3")]));
    }
}
