//! `Store`: every access of the file system layer to the storage manager.
//!
//! All calls go through a [`Session`], so the manager's policies, access
//! control and audit apply to each. Small changes go through the
//! [`Journal`] when group commit is on; every read consults the journal
//! first, so the mount always sees its own changes. Directory listings are
//! kept for the attribute lifetime ([`Listings`]), and every change made
//! here drops them.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tierfs_core::access::StorageOperationType as Op;
use tierfs_core::{
    ByteStream, Condition, Error, ErrorKind, Key, ListEntry, ListOptions, Metadata, MetadataChanges,
    ObjectMeta, Patch, PutOptions, Result, Session, Storage, StorageExt, StorageManager,
};

use super::attr::PosixMeta;
use super::journal::{Change, Journal, JournalLimits, MAX_VALUE};
use super::listings::{Child, Listings};
use super::spool::Spool;

/// Chunk size of streamed writes.
const WRITE_CHUNK: usize = 1 << 20;
/// Stats in flight while completing a listing without metadata.
const STAT_CONCURRENCY: usize = 16;

/// The file system's view of the storage manager.
#[derive(Debug)]
pub struct Store {
    manager: StorageManager,
    journal: Option<Arc<Journal>>,
    open_access: AtomicBool,
    listings: Listings,
}

impl Store {
    /// A store over `manager`; with `group_commit`, small changes are
    /// queued in a [`Journal`] (its task runs on the current runtime).
    /// Directory listings are kept for `listing_ttl` (zero: never).
    pub fn new(manager: StorageManager, group_commit: bool, listing_ttl: Duration) -> Self {
        let journal = group_commit.then(|| Journal::start(manager.clone(), JournalLimits::default()));
        let listings = Listings::new(listing_ttl);
        let store = Store { manager, journal, open_access: AtomicBool::new(false), listings };
        store.refresh_access();
        store
    }

    /// The manager.
    pub fn manager(&self) -> &StorageManager {
        &self.manager
    }

    /// Whether no access rule and no audit log are in force (checks and
    /// principals then do not matter), as the manager says.
    pub fn open_access(&self) -> bool {
        self.open_access.load(Ordering::Acquire)
    }

    /// Takes again from the manager whether access is open, after a reconfiguration.
    pub fn refresh_access(&self) {
        self.open_access.store(self.manager.access_is_open(), Ordering::Release);
    }

    /// Checks (and audits) that `session` may do `op` on `key` before an
    /// operation that reaches the store later (a write kept until close).
    pub fn check(&self, session: &Session, op: Op, key: &Key) -> Result<()> {
        session.check(op, key.as_str())
    }

    /// The pending change of `key`, if the session may read it; a refused
    /// read is audited and returned.
    async fn pending(&self, session: &Session, key: &Key) -> Result<Option<Change>> {
        let Some(journal) = &self.journal else { return Ok(None) };
        let Some(change) = journal.pending(key) else { return Ok(None) };
        if !session.allows(Op::Read, key.as_str()) {
            session.check(Op::Read, key.as_str())?;
        }
        Ok(Some(change))
    }

    /// The value of `key` as one local file (see `Storage::open_file`);
    /// `None` while a change of it waits in the journal.
    pub async fn open_file(&self, session: &Session, key: &Key) -> Result<Option<tierfs_core::LocalFile>> {
        if self.journal.as_ref().is_some_and(|j| j.pending(key).is_some()) {
            return Ok(None);
        }
        session.open_file(key).await
    }

    /// Size, time and metadata of `key`.
    pub async fn stat(&self, session: &Session, key: &Key) -> Result<ObjectMeta> {
        match self.pending(session, key).await? {
            Some(change) => Journal::meta_of(key, &change).ok_or_else(|| Error::not_found(key.as_str())),
            None => session.stat(key).await,
        }
    }

    /// Bytes `range` of `key`.
    pub async fn get_range(&self, session: &Session, key: &Key, range: Range<u64>) -> Result<Bytes> {
        match self.pending(session, key).await? {
            Some(Change::Put { value, .. }) => {
                let r = tierfs_core::clamp_range(&range, value.len() as u64)?;
                Ok(value.slice(r))
            }
            Some(Change::Delete) => Err(Error::not_found(key.as_str())),
            None => session.get_range(key, range).await,
        }
    }

    /// The whole value of `key`, streamed.
    pub async fn read(&self, session: &Session, key: &Key) -> Result<ByteStream> {
        self.read_range(session, key, None).await
    }

    /// Streams `range` of the value of `key` (all of it with `None`).
    pub async fn read_range(
        &self,
        session: &Session,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream> {
        match self.pending(session, key).await? {
            Some(Change::Put { value, .. }) => {
                let value = match range {
                    Some(r) => value.slice(
                        r.start.min(value.len() as u64) as usize..r.end.min(value.len() as u64) as usize,
                    ),
                    None => value,
                };
                Ok(futures::stream::iter([Ok(value)]).boxed())
            }
            Some(Change::Delete) => Err(Error::not_found(key.as_str())),
            None => session.read(key, range).await,
        }
    }

    /// The direct children of directory `prefix` (`""` or ending in `/`),
    /// in name order; a listing kept from less than the attribute lifetime
    /// ago when nothing changed through this mount since.
    pub async fn children(&self, session: &Session, prefix: &str) -> Result<Arc<Vec<Child>>> {
        if let Some(kept) = self.listings.get(session, prefix) {
            return Ok(kept);
        }
        let generation = self.listings.generation();
        let children = Arc::new(self.list_children(session, prefix).await?);
        self.listings.keep(session, prefix, generation, children.clone());
        Ok(children)
    }

    /// The listing of `prefix` kept for `session`, if it is still valid.
    pub fn kept_children(&self, session: &Session, prefix: &str) -> Option<Arc<Vec<Child>>> {
        self.listings.get(session, prefix)
    }

    /// The attributes of directory `key` kept for `session`, if still valid.
    pub fn kept_dir(&self, session: &Session, key: &str) -> Option<PosixMeta> {
        self.listings.dir(session, key)
    }

    /// The generation to give [`Store::keep_dir`]: take it before resolving.
    pub fn listing_generation(&self) -> u64 {
        self.listings.generation()
    }

    /// Keeps the attributes of directory `key` as `session` resolved them.
    pub fn keep_dir(&self, session: &Session, key: &str, generation: u64, posix: PosixMeta) {
        self.listings.keep_dir(session, key, generation, posix);
    }

    /// Whether the kernel may keep its own copies of listings: when
    /// listings are kept at all, and no access rule makes them differ
    /// between callers (the kernel's copy is shared by every process).
    pub fn kernel_may_keep_listings(&self) -> bool {
        self.listings.keeps() && self.open_access()
    }

    /// Something was changed without going through this store (a streamed
    /// write publishing its value): kept listings are stale. Call it once
    /// the change is visible, so no listing begun earlier is kept.
    pub fn changed(&self) {
        self.listings.changed();
    }

    /// Forgets kept listings, and takes the access rules again.
    pub fn reconfigured(&self) {
        self.listings.clear();
        self.refresh_access();
    }

    async fn list_children(&self, session: &Session, prefix: &str) -> Result<Vec<Child>> {
        // Queued changes are taken before the store is listed: one the
        // journal commits meanwhile is then in one or the other, never in
        // neither (taken after, it could be gone from the queue and missing
        // from a listing made before it landed).
        let pending = self.journal.as_ref().map(|journal| journal.pending_under(prefix));
        let mut children: BTreeMap<String, Child> = BTreeMap::new();
        let mut stream = session.list_stream(ListOptions::children(prefix));
        while let Some(item) = stream.next().await {
            match item? {
                ListEntry::Object(meta) => {
                    let name = meta.key.as_str()[prefix.len()..].to_owned();
                    child_mut(&mut children, &name).object = Some(meta);
                }
                ListEntry::Prefix(p) => child_mut(&mut children, &p[prefix.len()..p.len() - 1]).prefix = true,
            }
        }
        drop(stream);
        self.complete_listed(session, prefix, &mut children).await?;
        let Some(pending) = pending else {
            return Ok(children.into_values().collect());
        };
        let mut put_groups = HashSet::new();
        let mut delete_groups = HashSet::new();
        for (key, change) in pending {
            let rest = &key[prefix.len()..];
            match rest.find('/') {
                Some(i) => {
                    let group = rest[..i].to_owned();
                    match change {
                        Change::Put { .. } => put_groups.insert(group),
                        Change::Delete => delete_groups.insert(group),
                    };
                }
                None => {
                    let key = Key::new(key.clone())?;
                    if !session.allows(Op::Read, key.as_str()) {
                        continue;
                    }
                    let object = Journal::meta_of(&key, &change);
                    match (object, children.get_mut(rest)) {
                        (object, Some(child)) => child.object = object,
                        (Some(object), None) => {
                            children.insert(
                                rest.to_owned(),
                                Child { name: rest.to_owned(), object: Some(object), prefix: false },
                            );
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        // A directory that exists only in queued changes shows only to
        // whom a listing of the store would show it.
        for group in &put_groups {
            if children.get(group).is_some_and(|c| c.prefix)
                || session.shows_dir(&format!("{prefix}{group}/"))
            {
                child_mut(&mut children, group).prefix = true;
            }
        }
        for group in delete_groups.difference(&put_groups) {
            if children.get(group).is_some_and(|c| c.prefix) {
                let live = self.has_children(session, &format!("{prefix}{group}/")).await?;
                if let Some(child) = children.get_mut(group) {
                    child.prefix = live;
                }
            }
        }
        Ok(children.into_values().filter(|c| c.object.is_some() || c.prefix).collect())
    }

    /// Some listings carry no metadata (S3 returns none), and an empty
    /// object without it may be an empty file, a directory marker or a
    /// symlink: stats those, a few at a time, so that every child has its
    /// real kind. Non-empty objects are regular files whatever the listing
    /// says, and are left as listed.
    async fn complete_listed(
        &self,
        session: &Session,
        prefix: &str,
        children: &mut BTreeMap<String, Child>,
    ) -> Result<()> {
        let unknown: Vec<Key> = children
            .values()
            .filter_map(|c| c.object.as_ref())
            .filter(|meta| meta.size == 0 && meta.metadata.is_empty())
            .map(|meta| meta.key.clone())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut stats = futures::stream::iter(unknown)
            .map(|key| async move {
                let result = session.stat(&key).await;
                (key, result)
            })
            .buffer_unordered(STAT_CONCURRENCY);
        while let Some((key, result)) = stats.next().await {
            let Some(child) = children.get_mut(&key.as_str()[prefix.len()..]) else { continue };
            match result {
                Ok(meta) => child.object = Some(meta),
                Err(e) if is_not_found(&e) => child.object = None,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether any key exists below `prefix` (ending in `/`).
    pub async fn has_children(&self, session: &Session, prefix: &str) -> Result<bool> {
        let mut deleted = HashSet::new();
        if let Some(journal) = &self.journal {
            for (key, change) in journal.pending_under(prefix) {
                match change {
                    Change::Put { .. } => return Ok(true),
                    Change::Delete => deleted.insert(key),
                };
            }
        }
        let options =
            ListOptions { limit: Some(deleted.len().clamp(1, 1000) + 1), ..ListOptions::recursive(prefix) };
        let mut stream = session.list_stream(options);
        while let Some(item) = stream.next().await {
            if let ListEntry::Object(meta) = item? {
                if !deleted.contains(meta.key.as_str()) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every key at or below directory `key` in the store (after a flush).
    pub async fn subtree(&self, session: &Session, key: &Key) -> Result<Vec<Key>> {
        self.flush().await?;
        let mut keys = Vec::new();
        if session.stat(key).await.is_ok() {
            keys.push(key.clone());
        }
        let mut stream = session.list_stream(ListOptions::recursive(format!("{key}/")));
        while let Some(item) = stream.next().await {
            if let ListEntry::Object(meta) = item? {
                keys.push(meta.key);
            }
        }
        Ok(keys)
    }

    /// Stores a small value (queued when group commit is on).
    pub async fn put(&self, session: &Session, key: &Key, value: Bytes, metadata: Metadata) -> Result<()> {
        let result = self.put_now(session, key, value, metadata).await;
        self.listings.changed();
        result
    }

    async fn put_now(&self, session: &Session, key: &Key, value: Bytes, metadata: Metadata) -> Result<()> {
        let queue = value.len() <= MAX_VALUE
            && (!session.counted(key) || self.grows_nothing(session, key, value.len() as u64).await);
        match &self.journal {
            // A put a quota could refuse is made at once, so its writer
            // hears of a passed quota (see `Journal`'s documentation).
            Some(journal) if queue => {
                // Decided and audited now; the commit is checked again.
                session.check(Op::Write, key.as_str())?;
                let change = Change::Put { value, metadata, modified: std::time::SystemTime::now() };
                journal.enqueue(session, key.clone(), change).await
            }
            Some(_) => {
                self.flush().await?;
                session.put(key, value, PutOptions::with_metadata(metadata)).await.map(drop)
            }
            None => session.put(key, value, PutOptions::with_metadata(metadata)).await.map(drop),
        }
    }

    /// Whether a put of `len` bytes replaces a value at least as large
    /// (as the store or the journal holds it): no quota can refuse it (a
    /// directory's new times, a file rewritten no longer), so it may be
    /// queued.
    async fn grows_nothing(&self, session: &Session, key: &Key, len: u64) -> bool {
        self.stat(session, key).await.is_ok_and(|meta| len <= meta.size)
    }

    /// Whether `bytes` more under `key` fit its quotas
    /// ([`Session::check_quota`]); refused, queued changes (deletes that
    /// free room) are committed first and the question asked again.
    pub async fn check_quota(&self, session: &Session, key: &Key, bytes: i64) -> Result<()> {
        match session.check_quota(key, bytes, false) {
            Err(e) if e.kind() == tierfs_core::ErrorKind::QuotaExceeded && self.journal.is_some() => {
                self.flush().await?;
                session.check_quota(key, bytes, false)
            }
            done => done,
        }
    }

    /// Removes `key` (queued when group commit is on).
    pub async fn delete(&self, session: &Session, key: &Key) -> Result<()> {
        let result = self.delete_now(session, key).await;
        self.listings.changed();
        result
    }

    async fn delete_now(&self, session: &Session, key: &Key) -> Result<()> {
        match &self.journal {
            // Deletes of counted keys are queued too (they only free room):
            // a counted write flushes the journal first, and a quota check
            // that fails flushes it and asks again (`Store::check_quota`).
            Some(journal) => {
                session.check(Op::Delete, key.as_str())?;
                journal.enqueue(session, key.clone(), Change::Delete).await
            }
            None => session.delete(key).await,
        }
    }

    /// Stores the content of `spool` under `key`: queued whole when small,
    /// else streamed in chunks, never holding the value in memory.
    pub async fn write_spool(
        &self,
        session: &Session,
        key: &Key,
        metadata: Metadata,
        spool: &Spool,
    ) -> Result<()> {
        if spool.len() <= MAX_VALUE as u64 {
            let bytes = match spool.to_bytes() {
                Some(bytes) => bytes,
                None => spool
                    .read_at(0, spool.len() as usize)
                    .map_err(|e| Error::io("cannot read the spool file", e).with_key(key.as_str()))?,
            };
            return self.put(session, key, bytes, metadata).await;
        }
        self.flush().await?;
        let mut writer = session.write(key, PutOptions::with_metadata(metadata)).await?;
        let mut offset = 0;
        while offset < spool.len() {
            let chunk = match spool.read_at(offset, WRITE_CHUNK) {
                Ok(chunk) => chunk,
                Err(e) => {
                    writer.abort().await?;
                    return Err(Error::io("cannot read the spool file", e).with_key(key.as_str()));
                }
            };
            offset += chunk.len() as u64;
            writer.write(chunk).await?;
        }
        let finished = writer.finish().await.map(drop);
        self.listings.changed();
        finished
    }

    /// Changes part of the value of `key` (`Storage::patch`), after the
    /// queued changes (the file's creation among them) are committed.
    pub async fn patch(&self, session: &Session, key: &Key, patch: &Patch) -> Result<()> {
        self.flush().await?;
        let result = session.patch(key, patch, &Condition::Exists).await.map(drop);
        self.listings.changed();
        result
    }

    /// Replaces the metadata of `key`, keeping its value: a change still
    /// queued is queued again with the new map; otherwise the store updates
    /// the metadata alone (`Storage::set_metadata`: no byte of the value is
    /// read or written where the backend keeps metadata apart).
    pub async fn set_metadata(&self, session: &Session, key: &Key, metadata: Metadata) -> Result<()> {
        match self.pending(session, key).await? {
            Some(Change::Put { value, .. }) => return self.put(session, key, value, metadata).await,
            Some(Change::Delete) => return Err(Error::not_found(key.as_str())),
            None => {}
        }
        let changes = MetadataChanges::replace_with(metadata);
        let result = session.set_metadata(key, &changes, &Condition::Exists).await.map(drop);
        self.listings.changed();
        result
    }

    /// Moves `from` to `to`, replacing `to` (after a flush, so no queued
    /// change of either key is overtaken).
    pub async fn rename(&self, session: &Session, from: &Key, to: &Key) -> Result<()> {
        self.flush().await?;
        if let Some(journal) = &self.journal {
            if journal.is_held(from.as_str()) {
                return Err(journal.failure(session.principal(), Some(from.as_str())).unwrap_or_else(|| {
                    Error::new(ErrorKind::Unavailable, "not yet saved: the store is full")
                }));
            }
        }
        let renamed = session.rename(from, to).await;
        self.listings.changed();
        renamed
    }

    /// Waits until every queued change is committed, dropped or held.
    pub async fn flush(&self) -> Result<()> {
        match &self.journal {
            Some(journal) => journal.flush().await,
            None => Ok(()),
        }
    }

    /// Flushes, then makes every acknowledged write durable; fails if a
    /// change of `session`'s principal could not be committed.
    pub async fn sync(&self, session: &Session) -> Result<()> {
        self.flush().await?;
        if let Some(failure) = self.failure(session, None) {
            return Err(failure);
        }
        self.manager.sync().await
    }

    /// What keeps `session`'s queued changes (of `key` only, if given) from
    /// the store, as far as is known now (no wait): see
    /// [`Journal::failure`].
    pub fn failure(&self, session: &Session, key: Option<&Key>) -> Option<Error> {
        self.journal.as_ref()?.failure(session.principal(), key.map(Key::as_str))
    }

    /// Commits and stops the journal (waiting at most `grace` for a full
    /// or unavailable store), then flushes the manager.
    pub async fn close(&self, grace: Duration) -> Result<()> {
        let journal = match &self.journal {
            Some(journal) => journal.close(grace).await,
            None => Ok(()),
        };
        let manager = self.manager.shutdown().await;
        journal.and(manager)
    }
}

fn child_mut<'a>(children: &'a mut BTreeMap<String, Child>, name: &str) -> &'a mut Child {
    children.entry(name.to_owned()).or_insert_with(|| Child {
        name: name.to_owned(),
        object: None,
        prefix: false,
    })
}

/// Whether `e` says the key does not exist.
pub fn is_not_found(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}
