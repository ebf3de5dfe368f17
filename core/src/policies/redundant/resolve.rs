//! Deciding a key's current state from what each member holds and what the
//! key table knows: the one rule reads, conditional writes, listings and
//! repairs share.
//!
//! 1. The trusted copy with the highest revision wins (ties: the member
//!    listed first), unless a tombstone at least as recent says the key was
//!    deleted. A copy is trusted unless its member lags behind a write of a
//!    higher revision.
//! 2. With no trusted copy: absent if the latest missed write was a delete,
//!    or if a member that lags behind nothing says absent.
//! 3. Otherwise, if every member answered, the highest revision present
//!    wins (the writes the marks speak of reached no member).
//! 4. Otherwise the state is unknown: the members that may hold the latest
//!    copy are unreachable.

use crate::storage::ObjectMeta;

use super::hint::Hint;
use super::revision::revision;

/// What one member holds of a key.
#[derive(Debug, Clone)]
pub(super) enum Replica {
    /// A copy, as the member describes it (raw metadata).
    Present(ObjectMeta),
    /// No copy.
    Absent,
    /// The member did not answer.
    Unreachable,
}

impl Replica {
    /// The copy's revision, if there is a copy.
    pub(super) fn revision(&self) -> Option<u64> {
        match self {
            Replica::Present(meta) => Some(revision(&meta.metadata)),
            _ => None,
        }
    }
}

/// The state a key should have on every member.
#[derive(Debug, Clone)]
pub(super) enum Resolved {
    /// The copy on `member` (raw metadata), of revision `rev`.
    Present { member: usize, meta: ObjectMeta, rev: u64 },
    /// No copy; `rev` is the delete's revision when known, else 0.
    Absent { rev: u64 },
    /// Cannot be decided while some members are unreachable.
    Unknown,
}

impl Resolved {
    /// The revision every member should hold (a delete's for `Absent`).
    pub(super) fn rev(&self) -> Option<u64> {
        match self {
            Resolved::Present { rev, .. } | Resolved::Absent { rev } => Some(*rev),
            Resolved::Unknown => None,
        }
    }

    /// Whether `replica` matches this state (`None` when it cannot tell).
    pub(super) fn matches(&self, replica: &Replica) -> Option<bool> {
        match (self, replica) {
            (_, Replica::Unreachable) | (Resolved::Unknown, _) => None,
            (Resolved::Present { rev, .. }, Replica::Present(meta)) => Some(revision(&meta.metadata) >= *rev),
            (Resolved::Present { .. }, Replica::Absent) => Some(false),
            (Resolved::Absent { .. }, Replica::Present(_)) => Some(false),
            (Resolved::Absent { .. }, Replica::Absent) => Some(true),
        }
    }
}

fn best<'a>(
    candidates: impl Iterator<Item = (usize, &'a ObjectMeta)>,
) -> Option<(usize, &'a ObjectMeta, u64)> {
    // Highest revision; at equal revisions the member listed first.
    candidates.map(|(m, meta)| (m, meta, revision(&meta.metadata))).fold(None, |acc, c| match acc {
        Some(a) if a.2 >= c.2 => Some(a),
        _ => Some(c),
    })
}

/// The state of a key whose members hold `replicas` (indexed by member).
pub(super) fn resolve(replicas: &[Replica], hint: Option<&Hint>) -> Resolved {
    let empty = Hint::default();
    let hint = hint.unwrap_or(&empty);
    let present = || {
        replicas.iter().enumerate().filter_map(|(m, r)| match r {
            Replica::Present(meta) => Some((m, meta)),
            _ => None,
        })
    };
    let tombstone = hint.tombstone;
    let trusted = best(present().filter(|(m, meta)| hint.trusts(*m, revision(&meta.metadata))));
    if let Some((member, meta, rev)) = trusted {
        return match tombstone {
            Some(t) if t >= rev => Resolved::Absent { rev: t },
            _ => Resolved::Present { member, meta: meta.clone(), rev },
        };
    }
    if hint.latest_is_delete() {
        return Resolved::Absent { rev: tombstone.unwrap_or(0) };
    }
    let authoritative_absence = replicas
        .iter()
        .enumerate()
        .any(|(m, r)| matches!(r, Replica::Absent) && !hint.lagging.contains_key(&m));
    if authoritative_absence {
        return Resolved::Absent { rev: tombstone.unwrap_or(0) };
    }
    if replicas.iter().all(|r| !matches!(r, Replica::Unreachable)) {
        return match best(present()) {
            Some((member, meta, rev)) if tombstone.is_none_or(|t| rev > t) => {
                Resolved::Present { member, meta: meta.clone(), rev }
            }
            _ => Resolved::Absent { rev: tombstone.unwrap_or(0) },
        };
    }
    Resolved::Unknown
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::key::Key;
    use crate::storage::Metadata;

    fn copy(rev: u64) -> Replica {
        let mut metadata = Metadata::new();
        metadata.insert("tierfs.rev".into(), rev.to_string());
        Replica::Present(ObjectMeta {
            key: Key::new("k").unwrap(),
            size: 1,
            modified: SystemTime::UNIX_EPOCH,
            version: "1".into(),
            metadata,
        })
    }

    fn hint(lagging: &[(usize, u64)], tombstone: Option<u64>) -> Hint {
        Hint { lagging: lagging.iter().copied().collect::<BTreeMap<_, _>>(), tombstone }
    }

    fn present(r: &Resolved) -> Option<(usize, u64)> {
        match r {
            Resolved::Present { member, rev, .. } => Some((*member, *rev)),
            _ => None,
        }
    }

    #[test]
    fn highest_revision_wins_first_member_on_ties() {
        let r = resolve(&[copy(5), copy(7), copy(7)], None);
        assert_eq!(present(&r), Some((1, 7)));
        let r = resolve(&[Replica::Absent, copy(3), Replica::Unreachable], None);
        assert_eq!(present(&r), Some((1, 3)));
    }

    #[test]
    fn stale_copies_of_lagging_members_are_not_trusted() {
        // Member 1 missed revision 9 and holds 4; the others are down.
        let replicas = [Replica::Unreachable, copy(4), Replica::Unreachable];
        assert!(matches!(resolve(&replicas, Some(&hint(&[(1, 9)], None))), Resolved::Unknown));
        // Once member 1 holds 9 or later it is trusted again.
        let replicas = [Replica::Unreachable, copy(9), Replica::Unreachable];
        assert_eq!(present(&resolve(&replicas, Some(&hint(&[(1, 9)], None)))), Some((1, 9)));
    }

    #[test]
    fn tombstones_keep_deleted_keys_deleted() {
        // Deleted at 8 while member 2 was down; member 2 still holds revision 5.
        let h = hint(&[(2, 8)], Some(8));
        let r = resolve(&[Replica::Absent, Replica::Absent, copy(5)], Some(&h));
        assert!(matches!(r, Resolved::Absent { rev: 8 }));
        let r = resolve(&[Replica::Unreachable, Replica::Unreachable, copy(5)], Some(&h));
        assert!(matches!(r, Resolved::Absent { rev: 8 }));
        // A later write outranks the tombstone.
        let r = resolve(&[copy(9), Replica::Absent, copy(5)], Some(&h));
        assert_eq!(present(&r), Some((0, 9)));
    }

    #[test]
    fn absence_on_an_up_to_date_member_is_authoritative() {
        let r = resolve(&[Replica::Unreachable, Replica::Absent], None);
        assert!(matches!(r, Resolved::Absent { rev: 0 }));
        let r = resolve(&[Replica::Unreachable, Replica::Absent], Some(&hint(&[(1, 3)], None)));
        assert!(matches!(r, Resolved::Unknown));
    }

    #[test]
    fn writes_that_reached_no_member_are_forgotten_when_all_answer() {
        let h = hint(&[(0, 9), (1, 9)], None);
        let r = resolve(&[copy(4), copy(3)], Some(&h));
        assert_eq!(present(&r), Some((0, 4)));
        assert_eq!(r.matches(&copy(3)), Some(false));
        assert_eq!(r.matches(&copy(4)), Some(true));
        assert_eq!(r.matches(&Replica::Unreachable), None);
    }
}
