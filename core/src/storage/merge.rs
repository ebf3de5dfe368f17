//! Listing several sources as one: the router (routes inside a listed
//! prefix), tiers and copies all need it.

use std::sync::Arc;

use futures::future::try_join_all;

use crate::error::Result;
use crate::storage::{ListEntry, ListOptions, ListPage, Storage, DEFAULT_LIST_LIMIT};

/// Decides whether a source's object belongs in a merged listing.
pub type KeyFilter = dyn Fn(&str) -> bool + Send + Sync;

/// One source of a merged listing: a storage and which of its objects count
/// (`None`: all of them).
pub struct MergeSource<'a> {
    /// The storage to list.
    pub storage: Arc<dyn Storage>,
    /// Keeps an object only if this returns `true` for its key.
    pub keep: Option<&'a KeyFilter>,
}

/// One page of the union of the sources' listings, in name order, with the
/// same pagination contract as [`Storage::list`]. When two sources hold the
/// same name, the earlier source wins.
///
/// Each source is asked for one page; entries are kept only up to the
/// smallest last name among sources that have more, so nothing a source
/// has not returned yet can sort before an emitted entry.
pub async fn merge_list(sources: &[MergeSource<'_>], options: &ListOptions) -> Result<ListPage> {
    let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let pages = try_join_all(sources.iter().map(|s| s.storage.list(options))).await?;
    let cutoff: Option<String> = pages
        .iter()
        .filter(|p| p.next.is_some())
        .filter_map(|p| p.entries.last().map(|e| e.name().to_owned()))
        .min();
    let mut entries: Vec<(usize, ListEntry)> = Vec::new();
    for (i, (page, source)) in pages.into_iter().zip(sources).enumerate() {
        for entry in page.entries {
            if let (ListEntry::Object(meta), Some(keep)) = (&entry, source.keep) {
                if !keep(meta.key.as_str()) {
                    continue;
                }
            }
            if cutoff.as_deref().is_some_and(|c| entry.name() > c) {
                continue;
            }
            entries.push((i, entry));
        }
    }
    entries.sort_by(|(ia, a), (ib, b)| a.name().cmp(b.name()).then(ia.cmp(ib)));
    entries.dedup_by(|later, earlier| later.1.name() == earlier.1.name());
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let entries: Vec<ListEntry> = entries.into_iter().map(|(_, e)| e).collect();
    let more = truncated || cutoff.is_some();
    let next = if more { entries.last().map(|e| e.name().to_owned()).or(cutoff) } else { None };
    Ok(ListPage { entries, next })
}
