//! Which members own a key (rendezvous hashing), and the layout record
//! every member keeps so a restart knows where keys may still be.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{PutOptions, Storage};

/// The key under which every member keeps the layout record (hidden from
/// listings, refused to callers).
pub const LAYOUT_KEY: &str = ".tierfs-sharded";

/// Format version of the record.
const FORMAT: u32 = 1;

/// One placement: who owns keys, and how many copies each key has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The owning members' backend names, in configuration order.
    pub members: Vec<String>,
    /// Copies of each key.
    pub replicas: usize,
}

impl Placement {
    /// The `replicas` members that own `key`: the highest [`score`]s, in
    /// descending order.
    /// Adding a member moves only the keys it now wins (about 1/n of them);
    /// removing one moves only the keys it owned.
    pub fn owners<'a>(&'a self, key: &str) -> Vec<&'a str> {
        let hash = key_hash(key);
        let mut scored: Vec<(u64, &str)> =
            self.members.iter().map(|m| (score(hash, member_seed(m)), m.as_str())).collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().take(self.replicas).map(|(_, m)| m).collect()
    }
}

/// The hash of a key that [`score`] takes: `xxh3(key)`.
pub fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// The seed of a member that [`score`] takes: `xxh3(name)`.
pub fn member_seed(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// The rendezvous score of a member for a key: the splitmix64 finalizer of
/// `key_hash xor member_seed`. One hash of the key serves every member;
/// the finalizer makes each member's score an independent draw.
pub fn score(key_hash: u64, member_seed: u64) -> u64 {
    let mut z = key_hash ^ member_seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The record each member keeps under [`LAYOUT_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutRecord {
    /// Format version.
    pub tierfs_sharded: u32,
    /// Identifies the sharded store (random, set when first written).
    pub store: String,
    /// Grows with every change of the record; the highest one wins.
    pub epoch: u64,
    /// Where keys go now.
    pub current: Placement,
    /// Earlier placements whose keys may not all have moved yet, oldest
    /// first.
    #[serde(default)]
    pub pending: Vec<Placement>,
    /// Keys may be on any member (the members held data before the first
    /// record was written).
    #[serde(default)]
    pub unknown: bool,
}

impl LayoutRecord {
    /// The record of a store no record speaks of: placement unknown until
    /// the first pass has looked at every key.
    pub fn fresh(current: Placement) -> LayoutRecord {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).unwrap_or_default();
        LayoutRecord {
            tierfs_sharded: FORMAT,
            store: hex::encode(id),
            epoch: 1,
            current,
            pending: Vec::new(),
            unknown: true,
        }
    }

    /// Whether every key is where `current` puts it.
    pub fn settled(&self) -> bool {
        self.pending.is_empty() && !self.unknown
    }

    /// The record after moving to `target`: the old current placement
    /// joins the pending ones.
    pub fn moved_to(&self, target: Placement) -> LayoutRecord {
        let mut next = self.clone();
        next.epoch += 1;
        if next.current != target {
            let old = std::mem::replace(&mut next.current, target);
            next.pending.retain(|p| *p != old);
            next.pending.push(old);
            next.pending.retain(|p| *p != next.current);
        }
        next
    }

    /// The record once a pass has found every key at its owners.
    pub fn settle(&self) -> LayoutRecord {
        LayoutRecord { epoch: self.epoch + 1, pending: Vec::new(), unknown: false, ..self.clone() }
    }

    /// Every member name the record speaks of.
    pub fn member_names(&self) -> BTreeSet<&str> {
        std::iter::once(&self.current)
            .chain(&self.pending)
            .flat_map(|p| p.members.iter().map(String::as_str))
            .collect()
    }

    /// The record with `gone` removed from every placement (their keys are
    /// given up); placements left empty are dropped.
    pub fn forgetting(&self, gone: &[String]) -> LayoutRecord {
        let mut next = self.clone();
        for p in std::iter::once(&mut next.current).chain(next.pending.iter_mut()) {
            p.members.retain(|m| !gone.contains(m));
        }
        next.pending.retain(|p| !p.members.is_empty());
        next
    }
}

/// The reserved key as a [`Key`].
pub fn layout_key() -> Key {
    Key::new(LAYOUT_KEY).expect("a valid key")
}

/// Reads `member`'s record; `None` when it has none.
pub async fn read_record(member: &Arc<dyn Storage>) -> Result<Option<LayoutRecord>> {
    match member.get(&layout_key()).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the sharded layout record `{LAYOUT_KEY}` on backend `{}` is unreadable ({e}); \
                     it was not written by this version of TierFS",
                    member.name()
                ),
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `record` to `member`.
pub async fn write_record(member: &Arc<dyn Storage>, record: &LayoutRecord) -> Result<()> {
    let bytes = serde_json::to_vec(record).expect("a record serializes");
    member.put(&layout_key(), Bytes::from(bytes), PutOptions::default()).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(n: usize) -> Placement {
        Placement { members: (0..n).map(|i| format!("m{i}")).collect(), replicas: 1 }
    }

    #[test]
    fn adding_a_member_moves_about_its_share_and_only_to_it() {
        let (four, five) = (placement(4), placement(5));
        let keys: Vec<String> = (0..20_000).map(|i| format!("dir/{i}.dat")).collect();
        let mut moved = 0;
        let mut counts = [0usize; 4];
        for k in &keys {
            let (before, after) = (four.owners(k)[0], five.owners(k)[0]);
            counts[before[1..].parse::<usize>().unwrap()] += 1;
            if before != after {
                assert_eq!(after, "m4", "a key moved between old members");
                moved += 1;
            }
        }
        let fraction = moved as f64 / keys.len() as f64;
        assert!((0.17..0.23).contains(&fraction), "moved {fraction}");
        for c in counts {
            assert!((4_500..5_500).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn replicas_are_distinct_and_stable() {
        let p = Placement { replicas: 2, ..placement(3) };
        let owners = p.owners("k");
        assert_eq!(owners.len(), 2);
        assert_ne!(owners[0], owners[1]);
        assert_eq!(owners, p.owners("k"));
        // The scores do not depend on the members' order.
        let reversed = Placement { members: p.members.iter().rev().cloned().collect(), replicas: 2 };
        assert_eq!(reversed.owners("k"), owners);
    }

    #[test]
    fn moves_keep_each_earlier_placement_once() {
        let r = LayoutRecord::fresh(placement(2));
        let r2 = r.moved_to(placement(3));
        assert_eq!((r2.epoch, r2.pending.clone()), (2, vec![placement(2)]));
        let r3 = r2.moved_to(placement(2));
        assert_eq!(r3.current, placement(2));
        assert_eq!(r3.pending, vec![placement(3)]);
        assert!(r3.settle().settled());
        let f = r2.forgetting(&["m1".to_owned()]);
        assert_eq!(f.current.members, ["m0", "m2"]);
        assert_eq!(f.pending[0].members, ["m0"]);
    }
}
