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

use super::store::Child;

/// Most listings kept; past this, expired ones are dropped, then all.
const MAX_LISTINGS: usize = 256;

#[derive(Debug)]
struct Kept {
    at: Instant,
    generation: u64,
    children: Arc<Vec<Child>>,
}

/// The kept listings.
#[derive(Debug)]
pub struct Listings {
    ttl: Duration,
    generation: AtomicU64,
    kept: Mutex<HashMap<(String, String), Kept>>,
}

impl Listings {
    /// Listings kept for `ttl` (zero keeps none).
    pub fn new(ttl: Duration) -> Self {
        Listings { ttl, generation: AtomicU64::new(0), kept: Mutex::new(HashMap::new()) }
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
