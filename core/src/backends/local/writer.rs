//! Streamed writes: buffered in memory up to [`INLINE_LIMIT`], then spilled
//! to a new blob file, published by one transaction in `finish`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{blobs, LocalStorage, StagedBody, StagedOp, StagedPut, INLINE_LIMIT};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{ObjectMeta, PutOptions, ValueWriter};

pub(super) struct LocalWriter {
    store: LocalStorage,
    key: Key,
    options: PutOptions,
    buf: BytesMut,
    blob: Option<(u64, Arc<std::fs::File>)>,
    size: u64,
    done: bool,
}

impl LocalWriter {
    pub fn new(store: LocalStorage, key: Key, options: PutOptions) -> Self {
        LocalWriter { store, key, options, buf: BytesMut::new(), blob: None, size: 0, done: false }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        self.store.ctx(Error::io("cannot write the value's blob file", e), &self.key, "write")
    }

    /// Buffers `chunk`, or appends it to the blob once the value outgrows
    /// [`INLINE_LIMIT`].
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        if self.blob.is_none() && self.buf.len() + chunk.len() <= INLINE_LIMIT {
            self.buf.extend_from_slice(&chunk);
            return Ok(());
        }
        if !self.buf.is_empty() {
            let pending = std::mem::take(&mut self.buf).freeze();
            let len = pending.len() as u64;
            self.append_to_blob(pending).await?;
            self.size += len;
        }
        let len = chunk.len() as u64;
        self.append_to_blob(chunk).await?;
        self.size += len;
        Ok(())
    }

    /// Writes `data` at offset `self.size` of the blob, creating it first if
    /// needed; the caller advances `size`.
    async fn append_to_blob(&mut self, data: Bytes) -> Result<()> {
        if self.blob.is_none() {
            let id = self.store.inner.blobs.allocate();
            let file = self.store.inner.blobs.create(id).map_err(|e| self.io_error(e))?;
            self.blob = Some((id, Arc::new(file)));
        }
        let (_, file) = self.blob.as_ref().expect("blob just created");
        let (file, offset, key) = (file.clone(), self.size, self.key.clone());
        self.store
            .blocking(move |s| {
                blobs::write_at(&file, &data, offset)
                    .map_err(|e| s.ctx(Error::io("cannot write the value's blob file", e), &key, "write"))
            })
            .await
    }
}

#[async_trait]
impl ValueWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if self.done {
            return Err(self.failed_before());
        }
        let written = self.append(chunk).await;
        if written.is_err() {
            // The value cannot be completed: give its space back now, not
            // when the caller drops the writer (a full disk frees up at once).
            self.discard();
        }
        written
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        if self.done {
            return Err(self.failed_before());
        }
        self.done = true;
        let (key, metadata) = (self.key.clone(), std::mem::take(&mut self.options.metadata));
        let if_not_exists = self.options.if_not_exists;
        let staged = match self.blob.take() {
            None => {
                let value = std::mem::take(&mut self.buf).freeze();
                StagedPut {
                    key,
                    if_not_exists,
                    size: value.len() as u64,
                    metadata,
                    body: StagedBody::Inline(value),
                }
            }
            Some((id, file)) => {
                let size = self.size;
                let synced = self
                    .store
                    .blocking(move |s| {
                        file.sync_all().and_then(|_| s.inner.blobs.sync_dir()).map_err(|e| {
                            s.inner.blobs.remove(id);
                            Error::io("cannot make the value's blob file durable", e)
                        })
                    })
                    .await;
                synced.map_err(|e| self.store.ctx(e, &self.key, "write"))?;
                StagedPut { key, if_not_exists, size, metadata, body: StagedBody::Blob(id) }
            }
        };
        let store = self.store.clone();
        let mut metas = store.blocking(move |s| s.commit(vec![StagedOp::Put(staged)], "write")).await?;
        Ok(metas.pop().expect("one put, one meta"))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.discard();
        Ok(())
    }
}

impl LocalWriter {
    /// After a failed write, nothing more can be written or published.
    fn failed_before(&self) -> Error {
        let e = Error::new(ErrorKind::InvalidInput, "an earlier write of this value failed; write it again");
        self.store.ctx(e, &self.key, "write")
    }

    fn discard(&mut self) {
        self.done = true;
        self.buf = BytesMut::new();
        if let Some((id, _)) = self.blob.take() {
            self.store.inner.blobs.remove(id);
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.done {
            self.discard();
        }
    }
}
