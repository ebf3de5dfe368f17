//! Listing: the pages of all healthy members merged in name order.
//!
//! Each member is asked for the same page. A member that stopped early (its
//! page has a `next`) has listed everything up to its `next` and nothing
//! beyond, so the merge keeps only names up to the smallest `next` (the
//! horizon): below it every answering member's view is complete. The
//! horizon is at least one full page of one member past `start_after`, so
//! every page makes progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use crate::error::{Error, ErrorKind, Result};
use crate::storage::{ListEntry, ListOptions, ListPage, DEFAULT_LIST_LIMIT};

use super::replicate::relay;
use super::resolve::{resolve, Replica, Resolved};
use super::revision::{public_meta, revision};
use super::Shared;

impl Shared {
    pub(super) async fn list(self: &Arc<Self>, options: &ListOptions) -> Result<ListPage> {
        options.validate().map_err(|e| e.with_backend(self.name.as_str()).with_operation("list"))?;
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        let answers = join_all(self.members.iter().enumerate().map(|(m, member)| async move {
            if !member.is_healthy() {
                return Err(self.unhealthy(m));
            }
            member.list(options).await
        }))
        .await;
        let mut pages = Vec::new();
        let mut failures = Vec::new();
        for (m, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(page) => pages.push((m, page)),
                Err(e) => failures.push((m, e)),
            }
        }
        if pages.is_empty() {
            if let Some((_, e)) = failures.iter().find(|(_, e)| e.kind() != ErrorKind::Unavailable) {
                return Err(relay(e));
            }
            let details: Vec<String> = failures
                .iter()
                .map(|(m, e)| format!("`{}`: {}", self.members[*m].name(), e.message()))
                .collect();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("no member could be listed ({}); retry once one is back", details.join("; ")),
            )
            .with_key(options.prefix.as_str())
            .with_backend(self.name.as_str())
            .with_operation("list")
            .retryable(true));
        }

        let horizon: Option<String> = pages.iter().filter_map(|(_, p)| p.next.clone()).min();
        let mut answered = vec![false; self.members.len()];
        let mut merged: BTreeMap<String, Vec<(usize, ListEntry)>> = BTreeMap::new();
        for (m, page) in pages {
            answered[m] = true;
            for entry in page.entries {
                if horizon.as_deref().is_some_and(|h| entry.name() > h) {
                    continue;
                }
                merged.entry(entry.name().to_owned()).or_default().push((m, entry));
            }
        }
        let hints = self.keys.hints(merged.keys().map(String::as_str));

        let mut entries = Vec::with_capacity(merged.len().min(limit + 1));
        for ((name, found), hint) in merged.into_iter().zip(hints) {
            if matches!(found.first(), Some((_, ListEntry::Prefix(_)))) {
                entries.push(ListEntry::Prefix(name));
                continue;
            }
            let mut replicas: Vec<Replica> =
                answered.iter().map(|a| if *a { Replica::Absent } else { Replica::Unreachable }).collect();
            for (m, entry) in found {
                if let ListEntry::Object(meta) = entry {
                    replicas[m] = Replica::Present(meta);
                }
            }
            match resolve(&replicas, hint.as_ref()) {
                Resolved::Present { meta, .. } => entries.push(ListEntry::Object(public_meta(meta))),
                Resolved::Absent { .. } => {}
                Resolved::Unknown => {
                    // The current copy is on an unreachable member: the key
                    // exists, show the newest description at hand.
                    let newest = replicas
                        .into_iter()
                        .filter_map(|r| match r {
                            Replica::Present(meta) => Some(meta),
                            _ => None,
                        })
                        .max_by_key(|meta| revision(&meta.metadata));
                    if let Some(meta) = newest {
                        entries.push(ListEntry::Object(public_meta(meta)));
                    }
                }
            }
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.name().to_owned())
        } else {
            horizon
        };
        Ok(ListPage { entries, next })
    }
}
