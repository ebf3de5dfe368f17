//! Keys whose class changed move in the background: [`settle`] moves one
//! key under its exclusive lock; [`Moving`] serves a key meanwhile, so no
//! reader finds it missing or stale.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::ClassIndex;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    copy_value, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, LocalFile,
    MetadataChanges, ObjectMeta, Patch, PutOptions, Storage, ValueWriter,
};

fn missing(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// Deletes `key` from `storage`; a missing key is not an error.
pub(crate) async fn delete_if_present(storage: &dyn Storage, key: &Key) -> Result<()> {
    match storage.delete(key).await {
        Err(e) if missing(&e) => Ok(()),
        done => done,
    }
}

/// Puts `key` on `to` alone: a copy already there is the newer one (writes
/// go there first), else the one on `from` is copied. Then the copy on
/// `from` is deleted. The caller holds the key's exclusive lock. Returns
/// whether data moved. Readers that took no lock see the key's move
/// counter change ([`KeyLocks::moving`](crate::key_locks::KeyLocks::moving)) and look again.
pub(crate) async fn settle(
    locks: &crate::key_locks::KeyLocks,
    to: &dyn Storage,
    from: &dyn Storage,
    key: &Key,
) -> Result<bool> {
    let _moving = locks.moving(key.as_str());
    match to.stat(key).await {
        Ok(_) => {
            delete_if_present(from, key).await?;
            return Ok(false);
        }
        Err(e) if missing(&e) => {}
        Err(e) => return Err(e),
    }
    match copy_value(from, key, to, key, false).await {
        Ok(_) => {}
        Err(e) if missing(&e) => return Ok(false),
        Err(e) => return Err(e),
    }
    delete_if_present(from, key).await?;
    Ok(true)
}

/// A key on its way from `from` to `to`: reads look at `to`, then at
/// `from`, under the key's shared lock; changes take the key's exclusive
/// lock, land on `to` and leave no copy on `from`.
#[derive(Debug)]
pub(crate) struct Moving {
    to: Arc<dyn Storage>,
    from: Arc<dyn Storage>,
    index: Arc<ClassIndex>,
}

impl Moving {
    pub fn new(to: Arc<dyn Storage>, from: Arc<dyn Storage>, index: Arc<ClassIndex>) -> Self {
        Moving { to, from, index }
    }

    async fn read_with<'a, T, F, Fut>(&'a self, key: &Key, f: F) -> Result<T>
    where
        F: Fn(&'a Arc<dyn Storage>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let _shared = self.index.locks.read(key.as_str()).await;
        match f(&self.to).await {
            Err(e) if missing(&e) => f(&self.from).await,
            found => found,
        }
    }

    /// Settles the key, for a change that starts from its value.
    async fn settled(&self, key: &Key) -> Result<tokio::sync::OwnedRwLockWriteGuard<()>> {
        let exclusive = self.index.locks.write_owned(key.as_str()).await;
        settle(&self.index.locks, &*self.to, &*self.from, key).await?;
        Ok(exclusive)
    }
}

#[async_trait]
impl Storage for Moving {
    fn name(&self) -> &str {
        self.to.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.to.capabilities().and(self.from.capabilities())
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.read_with(key, |s| s.get(key)).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.read_with(key, |s| s.get_range(key, range.clone())).await
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        self.read_with(key, |s| s.get_with_meta(key)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.read_with(key, |s| s.stat(key)).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.read_with(key, |s| s.read(key, range.clone())).await
    }

    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        let _shared = self.index.locks.read(key.as_str()).await;
        match self.to.stat(key).await {
            Ok(_) => self.to.open_file(key).await,
            Err(e) if missing(&e) => self.from.open_file(key).await,
            Err(e) => Err(e),
        }
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        let _exclusive = self.index.locks.write(key.as_str()).await;
        if options.if_not_exists {
            match self.from.stat(key).await {
                Ok(_) => {
                    return Err(Error::new(ErrorKind::AlreadyExists, "the key exists").with_key(key.as_str()))
                }
                Err(e) if missing(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let _moving = self.index.locks.moving(key.as_str());
        let meta = self.to.put(key, value, options).await?;
        delete_if_present(&*self.from, key).await?;
        Ok(meta)
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let _exclusive = self.index.locks.write(key.as_str()).await;
        let _moving = self.index.locks.moving(key.as_str());
        let (to, from) = (self.to.delete(key).await, self.from.delete(key).await);
        match (to, from) {
            (Err(e), _) if !missing(&e) => Err(e),
            (_, Err(e)) if !missing(&e) => Err(e),
            (Ok(()), _) | (_, Ok(())) => Ok(()),
            (Err(e), Err(_)) => Err(e),
        }
    }

    async fn list(&self, _options: &ListOptions) -> Result<ListPage> {
        Err(Error::new(ErrorKind::Unsupported, "a key being moved is not listed on its own"))
    }

    async fn batch(&self, _ops: Vec<BatchOp>) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "a key whose storage class is changing cannot join a batch until it has moved; retry shortly",
        ))
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let exclusive = self.index.locks.write_owned(key.as_str()).await;
        if options.if_not_exists && self.from.stat(key).await.is_ok() {
            return Err(Error::new(ErrorKind::AlreadyExists, "the key exists").with_key(key.as_str()));
        }
        let inner = self.to.write(key, options).await?;
        Ok(Box::new(MovingWriter {
            inner,
            from: self.from.clone(),
            index: self.index.clone(),
            key: key.clone(),
            _exclusive: exclusive,
        }))
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        let _exclusive = self.settled(key).await?;
        self.to.set_metadata(key, changes, condition).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        let _exclusive = self.settled(key).await?;
        self.to.patch(key, patch, condition).await
    }
}

/// A streamed write of a moving key: published on the destination, then
/// the copy left behind is dropped.
struct MovingWriter {
    inner: Box<dyn ValueWriter>,
    from: Arc<dyn Storage>,
    index: Arc<ClassIndex>,
    key: Key,
    _exclusive: tokio::sync::OwnedRwLockWriteGuard<()>,
}

#[async_trait]
impl ValueWriter for MovingWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let _moving = self.index.locks.moving(self.key.as_str());
        let meta = self.inner.finish().await?;
        delete_if_present(&*self.from, &self.key).await?;
        Ok(meta)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
