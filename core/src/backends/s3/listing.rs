//! Listings: recursive ones stream `list_with_offset` pages; directory
//! listings use the delimiter and keep the directories fetched last for a
//! few seconds, so that following pages of a listing do not fetch the
//! directory again, even when listings of several directories interleave
//! (two `ls` at once, `find`). The kept directories are bounded in number
//! and in entries; the one fetched last is always kept.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use parking_lot::Mutex;

use super::{meta, path, S3Storage};
use crate::error::Result;
use crate::key::Key;
use crate::storage::{ListEntry, ListOptions, ListPage, ListPageBuilder};

/// How long a fetched directory serves the following pages of its listing.
const FRESH: Duration = Duration::from_secs(5);

/// Most directories kept.
const KEEP_DIRS: usize = 8;
/// Most entries of the kept directories together, besides the last one.
const KEEP_ENTRIES: usize = 300_000;

/// A fetched directory: its path, when, and its entries in name order.
type Fetched = (String, Instant, Arc<Vec<ListEntry>>);

/// The directories fetched last with the delimiter, most recent first.
#[derive(Debug, Default)]
pub(super) struct DirCache {
    dirs: Mutex<VecDeque<Fetched>>,
}

impl DirCache {
    /// Forgets the kept directories (after any write).
    pub fn clear(&self) {
        self.dirs.lock().clear();
    }

    fn get(&self, dir: &str) -> Option<Arc<Vec<ListEntry>>> {
        let dirs = self.dirs.lock();
        let (_, at, entries) = dirs.iter().find(|(d, _, _)| d == dir)?;
        (at.elapsed() < FRESH).then(|| entries.clone())
    }

    fn put(&self, dir: String, entries: Arc<Vec<ListEntry>>) {
        let mut dirs = self.dirs.lock();
        dirs.retain(|(d, at, _)| *d != dir && at.elapsed() < FRESH);
        dirs.push_front((dir, Instant::now(), entries));
        let mut total = 0;
        let keep = dirs
            .iter()
            .enumerate()
            .take_while(|(i, (_, _, e))| {
                if *i == 0 {
                    return true;
                }
                total += e.len();
                *i < KEEP_DIRS && total <= KEEP_ENTRIES
            })
            .count();
        dirs.truncate(keep);
    }
}

/// Whether `name` is a start-up probe's object ([`super::PROBE_PREFIX`]).
fn is_probe(name: &str) -> bool {
    name.starts_with(super::PROBE_PREFIX) && !name.contains('/')
}

pub(super) async fn list(s: &S3Storage, options: &ListOptions) -> Result<ListPage> {
    if options.recursive {
        recursive(s, options).await
    } else {
        directory(s, options).await
    }
}

async fn recursive(s: &S3Storage, options: &ListOptions) -> Result<ListPage> {
    let inner = &s.inner;
    let (dir, _) = path::dir_and_partial(&inner.prefix, &options.prefix);
    let offset =
        options.start_after.as_deref().map(|a| path::to_path(&inner.prefix, a.trim_end_matches('/')));
    let mut objects = match &offset {
        Some(o) => inner.store.list_with_offset(Some(&dir), o),
        None => inner.store.list(Some(&dir)),
    };
    let mut page = ListPageBuilder::new(options);
    while let Some(object) = objects.try_next().await.map_err(|e| s.err(e, "list", &options.prefix))? {
        let Some(name) = path::to_key(&inner.prefix, &object.location) else { continue };
        if name.as_str() < options.prefix.as_str() || is_probe(&name) {
            continue;
        }
        let meta = || {
            let key = Key::new(name.clone())?;
            Ok(meta::object_meta(key, &object, &Default::default()))
        };
        if !page.push(&name, meta)? {
            break;
        }
    }
    Ok(page.finish())
}

async fn directory(s: &S3Storage, options: &ListOptions) -> Result<ListPage> {
    let inner = &s.inner;
    let (dir, _) = path::dir_and_partial(&inner.prefix, &options.prefix);
    let cached = options.start_after.as_ref().and_then(|_| inner.listings.get(dir.as_ref()));
    let entries = match cached {
        Some(entries) => entries,
        None => {
            let result = inner
                .store
                .list_with_delimiter(Some(&dir))
                .await
                .map_err(|e| s.err(e, "list", &options.prefix))?;
            let mut entries = Vec::with_capacity(result.common_prefixes.len() + result.objects.len());
            for p in &result.common_prefixes {
                if let Some(name) = path::to_key(&inner.prefix, p) {
                    entries.push(ListEntry::Prefix(format!("{name}/")));
                }
            }
            for object in &result.objects {
                if let Some(name) = path::to_key(&inner.prefix, &object.location).filter(|n| !is_probe(n)) {
                    let key = Key::new(name)?;
                    entries.push(ListEntry::Object(meta::object_meta(key, object, &Default::default())));
                }
            }
            entries.sort_by(|a, b| a.name().cmp(b.name()));
            let entries = Arc::new(entries);
            inner.listings.put(dir.as_ref().to_owned(), entries.clone());
            entries
        }
    };
    let mut page = ListPageBuilder::new(options);
    // Entries are in name order: start at the page's first candidate
    // rather than walking past every page before it.
    let lower =
        options.start_after.as_deref().map_or(options.prefix.as_str(), |a| a.max(options.prefix.as_str()));
    let from = entries.partition_point(|e| e.name() < lower);
    for entry in &entries[from..] {
        let name = entry.name();
        let meta = || match entry {
            ListEntry::Object(meta) => Ok(meta.clone()),
            ListEntry::Prefix(p) => Err(crate::Error::new(
                crate::ErrorKind::Unavailable,
                format!("the directory listing returned `{p}` as an object; list again"),
            )),
        };
        if !page.push(name, meta)? {
            break;
        }
    }
    Ok(page.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(n: usize) -> Arc<Vec<ListEntry>> {
        Arc::new((0..n).map(|i| ListEntry::Prefix(format!("d{i}/"))).collect())
    }

    #[test]
    fn interleaved_directories_stay_kept_within_bounds() {
        let cache = DirCache::default();
        cache.put("a/".into(), dir(10));
        cache.put("b/".into(), dir(10));
        assert!(cache.get("a/").is_some() && cache.get("b/").is_some(), "two listings interleave");
        for i in 0..KEEP_DIRS {
            cache.put(format!("x{i}/"), dir(1));
        }
        assert!(cache.get("a/").is_none(), "at most {KEEP_DIRS} directories");
        cache.put("big/".into(), dir(KEEP_ENTRIES + 1));
        assert!(cache.get("big/").is_some(), "the last one is kept whatever its size");
        cache.put("small/".into(), dir(1));
        assert!(cache.get("big/").is_none(), "but not beside others past the bound");
        assert!(cache.get("small/").is_some());
        cache.clear();
        assert!(cache.get("small/").is_none());
    }

    #[test]
    fn only_the_probes_own_objects_are_left_out() {
        assert!(is_probe(".tierfs-probe-4242-1795662735228053387"));
        assert!(!is_probe("docs/.tierfs-probe-4242-1"), "a user's key below a directory");
        assert!(!is_probe(".tierfs-probe-dir/inside"));
        assert!(!is_probe(".tierfs-probes"));
    }
}
