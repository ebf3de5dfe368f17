use std::ops::Bound;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::error::Result;
use crate::key::validate_prefix;
use crate::storage::{ObjectMeta, Storage};

/// Page size used when [`ListOptions::limit`] is `None`.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// What to list.
///
/// ```
/// use tierfs_core::ListOptions;
///
/// // Direct children of `photos/`: objects, and `photos/2024/`-style prefixes.
/// let children = ListOptions::children("photos/");
/// // Every key below `photos/`, at any depth.
/// let subtree = ListOptions::recursive("photos/");
/// assert!(!children.recursive && subtree.recursive);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this string (`""` for all, `a/b/` for inside `a/b`).
    pub prefix: String,
    /// `true`: every key below the prefix. `false`: group deeper keys into
    /// [`ListEntry::Prefix`] entries at the next `/` (S3's delimiter).
    pub recursive: bool,
    /// Resume after this entry: the [`ListPage::next`] of the previous page.
    pub start_after: Option<String>,
    /// Most entries in one page ([`DEFAULT_LIST_LIMIT`] when `None`).
    pub limit: Option<usize>,
}

impl ListOptions {
    /// Direct children of `prefix`.
    pub fn children(prefix: impl Into<String>) -> Self {
        ListOptions { prefix: prefix.into(), ..Default::default() }
    }

    /// Every key below `prefix`.
    pub fn recursive(prefix: impl Into<String>) -> Self {
        ListOptions { prefix: prefix.into(), recursive: true, ..Default::default() }
    }

    /// Checks the prefix and the limit.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if self.limit == Some(0) {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidInput,
                "list limit is 0; ask for at least one entry or leave it unset",
            ));
        }
        Ok(())
    }

    /// Where an ordered scan should start: at the prefix, or just past
    /// `start_after` (past a whole group when it names a `.../` prefix).
    pub fn start_bound(&self) -> Bound<String> {
        match &self.start_after {
            Some(after) if after.as_str() >= self.prefix.as_str() => match after.strip_suffix('/') {
                // Every key inside `a/b/` sorts before `a/b0` ('0' follows '/').
                Some(group) => Bound::Included(format!("{group}0")),
                None => Bound::Excluded(after.clone()),
            },
            _ => Bound::Included(self.prefix.clone()),
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// A stored value.
    Object(ObjectMeta),
    /// A group of deeper keys, ending in `/` (non-recursive listings only).
    Prefix(String),
}

impl ListEntry {
    /// The key, or the prefix with its trailing `/`.
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object(meta) => meta.key.as_str(),
            ListEntry::Prefix(p) => p,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in byte order of their names.
    pub entries: Vec<ListEntry>,
    /// Pass as [`ListOptions::start_after`] for the next page; `None` at the end.
    pub next: Option<String>,
}

/// Builds a [`ListPage`] from keys visited in byte order, for backends with
/// an ordered index. Feed keys from [`ListOptions::start_bound`] onwards
/// until [`push`](ListPageBuilder::push) returns `false`.
#[derive(Debug)]
pub struct ListPageBuilder<'a> {
    options: &'a ListOptions,
    limit: usize,
    page: ListPage,
}

impl<'a> ListPageBuilder<'a> {
    /// A builder for `options`.
    pub fn new(options: &'a ListOptions) -> Self {
        ListPageBuilder {
            options,
            limit: options.limit.unwrap_or(DEFAULT_LIST_LIMIT),
            page: ListPage::default(),
        }
    }

    /// Offers the next key; `meta` is called only if the key is listed as an
    /// object. Returns `Ok(false)` when the scan should stop.
    pub fn push(&mut self, key: &str, meta: impl FnOnce() -> Result<ObjectMeta>) -> Result<bool> {
        let prefix = self.options.prefix.as_str();
        if !key.starts_with(prefix) {
            return Ok(false);
        }
        if let Some(after) = &self.options.start_after {
            if key <= after.as_str() || (after.ends_with('/') && key.starts_with(after.as_str())) {
                return Ok(true);
            }
        }
        let rest = &key[prefix.len()..];
        let group = match rest.find('/') {
            Some(i) if !self.options.recursive => Some(&key[..prefix.len() + i + 1]),
            _ => None,
        };
        if let (Some(group), Some(ListEntry::Prefix(last))) = (group, self.page.entries.last()) {
            if last == group {
                return Ok(true);
            }
        }
        if self.page.entries.len() == self.limit {
            self.page.next = self.page.entries.last().map(|e| e.name().to_owned());
            return Ok(false);
        }
        self.page.entries.push(match group {
            Some(group) => ListEntry::Prefix(group.to_owned()),
            None => ListEntry::Object(meta()?),
        });
        Ok(true)
    }

    /// The finished page.
    pub fn finish(self) -> ListPage {
        self.page
    }
}

/// Conveniences over any [`Storage`].
pub trait StorageExt: Storage {
    /// Every entry of a listing as one stream, fetching page after page.
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use tierfs_core::{Key, ListOptions, MemoryStorage, PutOptions, Storage, StorageExt};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStorage::new("m");
    /// for k in ["a/1", "a/2", "a/sub/3", "b"] {
    ///     store.put(&Key::new(k)?, "x".into(), PutOptions::default()).await?;
    /// }
    /// let names: Vec<String> = store
    ///     .list_stream(ListOptions::children("a/"))
    ///     .map_ok(|e| e.name().to_owned())
    ///     .try_collect()
    ///     .await?;
    /// assert_eq!(names, ["a/1", "a/2", "a/sub/"]);
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    fn list_stream(&self, options: ListOptions) -> BoxStream<'_, Result<ListEntry>> {
        stream::try_unfold(Some(options), move |state| async move {
            let Some(options) = state else { return Ok::<_, crate::Error>(None) };
            let page = self.list(&options).await?;
            let next = page.next.map(|after| ListOptions { start_after: Some(after), ..options });
            Ok(Some((stream::iter(page.entries.into_iter().map(Ok)), next)))
        })
        .try_flatten()
        .boxed()
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}
