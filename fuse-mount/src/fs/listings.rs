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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tierfs_core::Session;

use super::attr::PosixMeta;
use super::store::Child;

/// Most listings kept; past this, expired ones are dropped, then all.
const MAX_LISTINGS: usize = 256;
/// Most directory attributes kept, likewise.
const MAX_DIRS: usize = 4096;

#[derive(Debug)]
struct Kept {
    at: Instant,
    generation: u64,
    children: Arc<Vec<Child>>,
}

/// Attributes of a directory, kept like a listing.
#[derive(Debug, Clone)]
struct KeptDir {
    at: Instant,
    generation: u64,
    posix: PosixMeta,
}

/// The kept listings.
#[derive(Debug)]
pub struct Listings {
    ttl: Duration,
    generation: AtomicU64,
    kept: Mutex<HashMap<(String, String), Kept>>,
    /// Directories resolved (their marker's attributes, or implicit), by
    /// key: a directory `stat` on an object store is a `HEAD` and a one-key
    /// listing, and `ls` asks for one each time it opens the directory.
    dirs: Mutex<HashMap<(String, String), KeptDir>>,
}

impl Listings {
    /// Listings kept for `ttl` (zero keeps none).
    pub fn new(ttl: Duration) -> Self {
        Listings {
            ttl,
            generation: AtomicU64::new(0),
            kept: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
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
        if self.ttl.is_zero() {
            return None;
        }
        let kept = self.kept.lock();
        let k = kept.get(&(who(session), prefix.to_owned()))?;
        (k.generation == self.generation() && k.at.elapsed() < self.ttl).then(|| k.children.clone())
    }

    /// Keeps a listing of `prefix` made by `session`, begun at `generation`.
    pub fn keep(&self, session: &Session, prefix: &str, generation: u64, children: Arc<Vec<Child>>) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut kept = self.kept.lock();
        if kept.len() >= MAX_LISTINGS {
            let now = self.generation();
            kept.retain(|_, k| k.generation == now && k.at.elapsed() < self.ttl);
            if kept.len() >= MAX_LISTINGS {
                kept.clear();
            }
        }
        kept.insert((who(session), prefix.to_owned()), Kept { at: Instant::now(), generation, children });
    }

    /// Drops every kept listing (after a reload: rules may have changed).
    pub fn clear(&self) {
        self.changed();
        self.kept.lock().clear();
        self.dirs.lock().clear();
    }

    /// The attributes of directory `key` as `session` resolved them, if
    /// still valid (the rules of listings apply).
    pub fn dir(&self, session: &Session, key: &str) -> Option<PosixMeta> {
        if self.ttl.is_zero() {
            return None;
        }
        let dirs = self.dirs.lock();
        let d = dirs.get(&(who(session), key.to_owned()))?;
        (d.generation == self.generation() && d.at.elapsed() < self.ttl).then(|| d.posix.clone())
    }

    /// Keeps the attributes of directory `key`, resolved by `session` from
    /// `generation` on.
    pub fn keep_dir(&self, session: &Session, key: &str, generation: u64, posix: PosixMeta) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut dirs = self.dirs.lock();
        if dirs.len() >= MAX_DIRS {
            let now = self.generation();
            dirs.retain(|_, d| d.generation == now && d.at.elapsed() < self.ttl);
            if dirs.len() >= MAX_DIRS {
                dirs.clear();
            }
        }
        dirs.insert((who(session), key.to_owned()), KeptDir { at: Instant::now(), generation, posix });
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
