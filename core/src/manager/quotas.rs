//! Changes of keys a quota counts (see [`crate::quotas`]): each holds its
//! keys' exclusive locks, reads the sizes it replaces, reserves what it
//! adds, and gives back what it frees once it succeeded. Counting at start
//! and on reload.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OwnedRwLockWriteGuard;

use super::classes::reserved;
use super::state::ManagerState;
use super::{Session, Shared, StorageManager};
use crate::classes::moves::settle;
use crate::error::{ErrorKind, Result};
use crate::key::Key;
use crate::quotas::{QuotaUsage, Quotas, Reservation, Used};
use crate::storage::{
    BatchOp, Condition, ListEntry, ListOptions, ObjectMeta, Operation, Patch, PutOptions, Storage,
    ValueWriter,
};

/// The size of `key` on `stack`; `None` when missing.
async fn size_of(stack: &dyn Storage, key: &Key) -> Result<Option<u64>> {
    match stack.stat(key).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Session {
    /// Where `key` is, any class move of it finished, under its exclusive lock.
    async fn settled_place(
        &self,
        state: &ManagerState,
        key: &Key,
    ) -> Result<(Arc<dyn Storage>, OwnedRwLockWriteGuard<()>)> {
        reserved(key)?;
        let index = &self.shared().classes;
        let exclusive = index.locks.write_owned(key.as_str()).await;
        let located = state.locate(index, key.as_str())?;
        if let Some(from) = located.from {
            settle(&index.locks, &*located.at.stack, &*from.stack, key).await?;
        }
        Ok((located.at.stack.clone(), exclusive))
    }

    pub(crate) async fn put_counted(
        &self,
        key: &Key,
        value: Bytes,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let state = self.state();
        self.authorize_key(&state, Operation::Put, key)?;
        let (stack, _exclusive) = self.settled_place(&state, key).await?;
        let old = size_of(&*stack, key).await?;
        let change = (key.as_str(), value.len() as i64 - old.unwrap_or(0) as i64, old.is_none() as i64);
        let reservation = self.shared().quotas.load_full().reserve(&[change])?;
        let meta = stack.put(key, value, options).await?;
        reservation.commit();
        Ok(meta)
    }

    pub(crate) async fn write_counted(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let state = self.state();
        self.authorize_key(&state, Operation::Write, key)?;
        let (stack, exclusive) = self.settled_place(&state, key).await?;
        let old = size_of(&*stack, key).await?.map_or((0, true), |size| (size, false));
        let reservation = self.shared().quotas.load_full().reserve(&[(key.as_str(), 0, old.1 as i64)])?;
        let inner = stack.write(key, options).await?;
        Ok(Box::new(CountedWriter {
            inner,
            reservation,
            key: key.clone(),
            old: old.0,
            written: 0,
            _exclusive: exclusive,
        }))
    }

    pub(crate) async fn delete_counted(&self, key: &Key) -> Result<()> {
        let state = self.state();
        self.authorize_key(&state, Operation::Delete, key)?;
        let (stack, _exclusive) = self.settled_place(&state, key).await?;
        let old = size_of(&*stack, key).await?;
        stack.delete(key).await?;
        if let Some(size) = old {
            self.shared().quotas.load().release(key.as_str(), size, 1);
        }
        Ok(())
    }

    pub(crate) async fn patch_counted(
        &self,
        key: &Key,
        patch: &Patch,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        let state = self.state();
        self.authorize_key(&state, Operation::Patch, key)?;
        let (stack, _exclusive) = self.settled_place(&state, key).await?;
        let old = size_of(&*stack, key).await?;
        let base = old.unwrap_or(0);
        let after = patch.final_len(base);
        let change = (key.as_str(), after as i64 - base as i64, old.is_none() as i64);
        let mut reservation = self.shared().quotas.load_full().reserve(&[change])?;
        let meta = stack.patch(key, patch, condition).await?;
        // The backend's answer is the truth: count what it says.
        if meta.size > after {
            if let Err(e) = reservation.grow(key.as_str(), meta.size - after) {
                tracing::warn!(key = %key, error = %e, "a patch grew a value past its quota's estimate");
            }
        } else if meta.size < after {
            reservation.free_on_commit(key.as_str(), after - meta.size);
        }
        reservation.commit();
        Ok(meta)
    }

    /// A rename once a quota counts either key: the target's quota gains
    /// the value, the source's loses it.
    pub(crate) async fn rename_counted(&self, state: &ManagerState, from: &Key, to: &Key) -> Result<()> {
        reserved(from)?;
        reserved(to)?;
        let index = &self.shared().classes;
        let _exclusive = index.locks.write_many(&[from.as_str(), to.as_str()]).await;
        let src = state.locate(index, from.as_str())?.at.stack.clone();
        let dst = state.locate(index, to.as_str())?.at.stack.clone();
        let Some(size) = size_of(&*src, from).await? else {
            return src.stat(from).await.map(drop);
        };
        let replaced = size_of(&*dst, to).await?;
        let changes = [
            (to.as_str(), size as i64 - replaced.unwrap_or(0) as i64, replaced.is_none() as i64),
            (from.as_str(), -(size as i64), -1),
        ];
        let reservation = self.shared().quotas.load_full().reserve(&changes)?;
        self.rename_locked(state, from, to).await?;
        reservation.commit();
        Ok(())
    }

    /// A batch once a quota counts one of its keys.
    pub(crate) async fn batch_counted(&self, state: &ManagerState, ops: Vec<BatchOp>) -> Result<()> {
        let keys: Vec<&str> = ops.iter().map(|op| op.key().as_str()).collect();
        let index = &self.shared().classes;
        let _exclusive = index.locks.write_many(&keys).await;
        // Each key's size before, then each op's effect in order.
        let mut sizes: std::collections::HashMap<&str, Option<u64>> = Default::default();
        for op in &ops {
            reserved(op.key())?;
            if !sizes.contains_key(op.key().as_str()) {
                let at = state.locate(index, op.key().as_str())?.at.stack.clone();
                sizes.insert(op.key().as_str(), size_of(&*at, op.key()).await?);
            }
        }
        let mut changes: Vec<(&str, i64, i64)> = Vec::new();
        for op in &ops {
            let key = op.key().as_str();
            let before = sizes[key];
            let after = match op {
                BatchOp::Put { value, .. } => Some(value.len() as u64),
                BatchOp::Delete { .. } => None,
            };
            let bytes = after.unwrap_or(0) as i64 - before.unwrap_or(0) as i64;
            let count = after.is_some() as i64 - before.is_some() as i64;
            changes.push((key, bytes, count));
            sizes.insert(key, after);
        }
        let reservation = self.shared().quotas.load_full().reserve(&changes)?;
        self.batch_placed(state, ops).await?;
        reservation.commit();
        Ok(())
    }

    /// Every listed key under `prefix`, counted, as the manager sees them.
    async fn count(&self, state: &ManagerState, prefix: &str) -> Result<Used> {
        let mut usage = Used::default();
        let mut options = ListOptions::recursive(prefix);
        loop {
            let page = match self.shared().classes.active() {
                true => self.list_places(state, &options).await?,
                false => state.router.list(&options).await?,
            };
            for entry in &page.entries {
                if let ListEntry::Object(meta) = entry {
                    if !crate::classes::is_reserved(meta.key.as_str()) {
                        usage.bytes += meta.size;
                        usage.keys += 1;
                    }
                }
            }
            match page.next {
                Some(next) => options.start_after = Some(next),
                None => return Ok(usage),
            }
        }
    }
}

/// A streamed write of a counted key: each chunk past the old size is
/// reserved before it is written.
struct CountedWriter {
    inner: Box<dyn ValueWriter>,
    reservation: Reservation,
    key: Key,
    /// The size of the value it replaces.
    old: u64,
    written: u64,
    _exclusive: OwnedRwLockWriteGuard<()>,
}

#[async_trait]
impl ValueWriter for CountedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let after = self.written + chunk.len() as u64;
        let grown = after.saturating_sub(self.old.max(self.written));
        if grown > 0 {
            self.reservation.grow(self.key.as_str(), grown)?;
        }
        self.written = after;
        self.inner.write(chunk).await
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let meta = self.inner.finish().await?;
        if self.written < self.old {
            self.reservation.free_on_commit(self.key.as_str(), self.old - self.written);
        }
        self.reservation.commit();
        Ok(meta)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

impl Shared {
    /// Quotas for `state`'s configuration: usage kept for prefixes the
    /// previous quotas counted, counted by listing for the others.
    pub(crate) async fn count_quotas(
        self: &Arc<Self>,
        state: &ManagerState,
        previous: Option<&Quotas>,
    ) -> Result<Quotas> {
        let session = Session::internal(self.clone());
        let kept = previous.map(|p| p.usage()).unwrap_or_default();
        let mut counted = Vec::new();
        for quota in &state.config.quotas {
            let usage = match kept.iter().find(|k| k.prefix == quota.prefix) {
                Some(k) => k.used,
                None => session
                    .count(state, &quota.prefix)
                    .await
                    .map_err(|e| e.with_operation("count a quota's usage"))?,
            };
            counted.push((quota.prefix.clone(), usage));
        }
        Ok(Quotas::new(&state.config.quotas, |prefix| {
            counted.iter().find(|(p, _)| p == prefix).map(|(_, u)| *u)
        }))
    }
}

impl StorageManager {
    /// Every quota (`[[quotas]]`) with its limits and what it counts now.
    pub fn quotas(&self) -> Vec<QuotaUsage> {
        self.shared.quotas.load().usage()
    }

    /// The innermost quota counting `path` (a key, or a directory prefix
    /// ending in `/`), with its usage: what `df` in a mount shows for a
    /// directory. `None` when no quota counts it.
    pub fn quota_of(&self, path: &str) -> Option<QuotaUsage> {
        self.shared.quotas.load().innermost(path)
    }
}
