//! Streamed writes: the first part is buffered; a value that fits is one
//! PUT, a larger one becomes a multipart upload whose parts go up as they
//! fill, at most `parts_in_flight` (a setting) at a time.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::{ObjectStore, PutMultipartOptions, WriteMultipart};

use super::S3Storage;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{ObjectMeta, PutOptions, Storage, ValueWriter};

pub(super) struct S3Writer {
    storage: S3Storage,
    key: Key,
    options: PutOptions,
    buffer: BytesMut,
    upload: Option<WriteMultipart>,
    size: u64,
}

impl S3Writer {
    pub fn new(storage: S3Storage, key: Key, options: PutOptions) -> Self {
        S3Writer { storage, key, options, buffer: BytesMut::new(), upload: None, size: 0 }
    }

    async fn start_upload(&mut self) -> Result<()> {
        let s = &self.storage;
        let options =
            PutMultipartOptions { attributes: s.attributes(&self.options.metadata), ..Default::default() };
        let upload = s
            .inner
            .store
            .put_multipart_opts(&s.path(&self.key), options)
            .await
            .map_err(|e| s.err(e, "write", &self.key))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, s.inner.part_size);
        upload.put(std::mem::take(&mut self.buffer).freeze());
        self.upload = Some(upload);
        Ok(())
    }
}

#[async_trait]
impl ValueWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        match &mut self.upload {
            None => {
                self.buffer.extend_from_slice(&chunk);
                if self.buffer.len() > self.storage.inner.part_size {
                    if self.options.if_not_exists {
                        return Err(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "put-if-absent of a value larger than one part ({} bytes) is not \
                                 supported: S3 completes a multipart upload unconditionally; \
                                 raise part_size_mib of backend `{}` or write without if_not_exists",
                                self.storage.inner.part_size,
                                self.storage.name()
                            ),
                        )
                        .with_key(self.key.as_str())
                        .with_backend(self.storage.name().to_owned())
                        .with_operation("write"));
                    }
                    self.start_upload().await?;
                }
            }
            Some(upload) => upload.put(chunk),
        }
        if let Some(upload) = &mut self.upload {
            let (s, key) = (&self.storage, &self.key);
            upload.wait_for_capacity(s.inner.parts_in_flight).await.map_err(|e| s.err(e, "write", key))?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let Some(upload) = self.upload.take() else {
            let value = std::mem::take(&mut self.buffer).freeze();
            return self.storage.put_whole(&self.key, value, &self.options, "write").await;
        };
        let s = self.storage.clone();
        // Not while a metadata update of the key copies it (see `set_metadata`).
        let _publishing = s.inner.locks.read(self.key.as_str()).await;
        let result = upload.finish().await.map_err(|e| s.err(e, "write", &self.key))?;
        s.inner.listings.clear();
        Ok(ObjectMeta {
            key: self.key.clone(),
            size: self.size,
            modified: std::time::SystemTime::now(),
            version: result.e_tag.unwrap_or_default(),
            metadata: std::mem::take(&mut self.options.metadata),
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        match self.upload.take() {
            Some(upload) => upload.abort().await.map_err(|e| self.storage.err(e, "write", &self.key)),
            None => Ok(()),
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A writer dropped mid-upload: tell the store to discard the parts.
        if let (Some(upload), Ok(handle)) = (self.upload.take(), tokio::runtime::Handle::try_current()) {
            handle.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
