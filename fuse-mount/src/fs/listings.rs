//! Directory listings kept for the attribute lifetime.
//!
//! Listing a directory of an object store costs one request per 1,000
//! keys; `ls` twice in a row, or `find` walking back over a tree, would pay
//! it each time. A listing is kept for the mount's attribute lifetime
//! (`--attr-timeout`: one second on shared backends, a minute on private
//! ones), the same bound within which the kernel already trusts attributes,
//! so changes made by other clients show as promptly as they do for `stat`.
//! Every change made through this mount drops every kept listing at once
//! (a generation counter), so the mount always lists its own changes.
//!
//! Listings are kept per principal and roles: access control filters them.
//! Where no access rule applies, the kernel keeps its own copy as well
//! (`FOPEN_CACHE_DIR`): an `opendir` that finds its listing still kept lets
//! the kernel answer from that copy; one that lists afresh has the kernel
//! drop it (see `DirCache` in the file system layer).
//!
//! Kept listings are bounded by their entries, not only by their number:
//! at most [`MAX_KEPT_ENTRIES`] in all, and a listing larger than that is
//! not kept at all, so a mount over directories of a million files stays
//! within a known memory budget (each open directory handle holds its own
//! listing until it is closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tierfs_core::{ObjectMeta, Session};

use super::attr::PosixMeta;

/// Most listings kept; past this, expired ones are dropped, then all.
const MAX_LISTINGS: usize = 256;
/// Most entries of all kept listings together (about 100 MiB of them).
pub const MAX_KEPT_ENTRIES: usize = 200_000;
/// Most directory attributes kept, likewise.
const MAX_DIRS: usize = 4096;

/// Principal (with roles) and path.
type Place = (String, String);

/// One entry of a directory listing: a name with the object stored under
/// it and whether keys exist below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The last path segment.
    pub name: String,
    /// The object named exactly so, if any.
    pub object: Option<ObjectMeta>,
    /// Whether keys exist below `name/`.
    pub prefix: bool,
}

/// Values kept per principal and path, each valid for the lifetime and
/// while the generation it was begun at is current.
#[derive(Debug)]
struct Table<T> {
    max: usize,
    /// Most total weight of the values (see `weight`).
    max_weight: usize,
    weight: fn(&T) -> usize,
    /// When kept, the generation it was begun at, the value.
    map: Mutex<HashMap<Place, (Instant, u64, T)>>,
}

impl<T: Clone> Table<T> {
    fn new(max: usize, max_weight: usize, weight: fn(&T) -> usize) -> Self {
        Table { max, max_weight, weight, map: Mutex::new(HashMap::new()) }
    }

    fn get(&self, who: String, path: &str, generation: u64, ttl: Duration) -> Option<T> {
        let map = self.map.lock();
        let (at, begun, value) = map.get(&(who, path.to_owned()))?;
        (*begun == generation && at.elapsed() < ttl).then(|| value.clone())
    }

    /// Keeps `value`; past `max` entries or `max_weight`, drops the stale
    /// ones, then all. A value heavier than `max_weight` is not kept.
    fn keep(&self, who: String, path: &str, generation: u64, ttl: Duration, value: T) {
        let weight = (self.weight)(&value);
        let place = (who, path.to_owned());
        let mut map = self.map.lock();
        map.remove(&place);
        if weight > self.max_weight {
            return;
        }
        let total = |map: &HashMap<Place, (Instant, u64, T)>| {
            map.values().map(|(_, _, v)| (self.weight)(v)).sum::<usize>()
        };
        if map.len() >= self.max || total(&map) + weight > self.max_weight {
            map.retain(|_, (at, begun, _)| *begun == generation && at.elapsed() < ttl);
            if map.len() >= self.max || total(&map) + weight > self.max_weight {
                map.clear();
            }
        }
        map.insert(place, (Instant::now(), generation, value));
    }

    fn clear(&self) {
        self.map.lock().clear();
    }
}

/// The kept listings.
#[derive(Debug)]
pub struct Listings {
    ttl: Duration,
    generation: AtomicU64,
    kept: Table<Arc<Vec<Child>>>,
    /// Directories resolved (their marker's attributes, or implicit), by
    /// key: a directory `stat` on an object store is a `HEAD` and a one-key
    /// listing, and `ls` asks for one each time it opens the directory.
    dirs: Table<PosixMeta>,
}

impl Listings {
    /// Listings kept for `ttl` (zero keeps none).
    pub fn new(ttl: Duration) -> Self {
        Listings {
            ttl,
            generation: AtomicU64::new(0),
            kept: Table::new(MAX_LISTINGS, MAX_KEPT_ENTRIES, |children| children.len()),
            dirs: Table::new(MAX_DIRS, MAX_DIRS, |_| 1),
        }
    }

    /// Whether listings are kept at all (a nonzero lifetime).
    pub fn keeps(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The current generation; take it *before* listing, and give it to
    /// [`keep`](Self::keep), so a change made meanwhile is never hidden.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Something changed through this mount (call it once the change is
    /// visible to listings): no listing kept or begun before is valid.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The listing of `prefix` as `session` saw it, if still valid.
    pub fn get(&self, session: &Session, prefix: &str) -> Option<Arc<Vec<Child>>> {
        if !self.keeps() {
            return None;
        }
        self.kept.get(who(session), prefix, self.generation(), self.ttl)
    }

    /// Keeps a listing of `prefix` made by `session`, begun at `generation`.
    pub fn keep(&self, session: &Session, prefix: &str, generation: u64, children: Arc<Vec<Child>>) {
        if self.keeps() && generation == self.generation() {
            self.kept.keep(who(session), prefix, generation, self.ttl, children);
        }
    }

    /// Drops every kept listing (after a reload: rules may have changed).
    pub fn clear(&self) {
        self.changed();
        self.kept.clear();
        self.dirs.clear();
    }

    /// The attributes of directory `key` as `session` resolved them, if
    /// still valid (the rules of listings apply).
    pub fn dir(&self, session: &Session, key: &str) -> Option<PosixMeta> {
        if !self.keeps() {
            return None;
        }
        self.dirs.get(who(session), key, self.generation(), self.ttl)
    }

    /// Keeps the attributes of directory `key`, resolved by `session` from
    /// `generation` on.
    pub fn keep_dir(&self, session: &Session, key: &str, generation: u64, posix: PosixMeta) {
        if self.keeps() && generation == self.generation() {
            self.dirs.keep(who(session), key, generation, self.ttl, posix);
        }
    }
}

/// The principal and its roles: what access control decides by.
fn who(session: &Session) -> String {
    let p = session.principal();
    let mut s = p.id().to_owned();
    for role in p.roles() {
        s.push('\0');
        s.push_str(role);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_values_are_bounded_by_weight() {
        let ttl = Duration::from_secs(60);
        let table: Table<Arc<Vec<u8>>> = Table::new(100, 10, |v| v.len());
        let keep = |path: &str, n: usize| table.keep("u".into(), path, 0, ttl, Arc::new(vec![0; n]));
        keep("a", 4);
        keep("b", 4);
        assert!(table.get("u".into(), "a", 0, ttl).is_some());
        // Past the weight, the older (still valid) ones go.
        keep("c", 4);
        assert!(table.get("u".into(), "a", 0, ttl).is_none());
        assert!(table.get("u".into(), "c", 0, ttl).is_some());
        // Heavier than the whole budget: not kept, nothing else dropped.
        keep("huge", 11);
        assert!(table.get("u".into(), "huge", 0, ttl).is_none());
        assert!(table.get("u".into(), "c", 0, ttl).is_some());
        // Keeping a path again replaces its value and its weight.
        keep("c", 6);
        assert!(table.get("u".into(), "c", 0, ttl).is_some_and(|v| v.len() == 6));
    }
}
