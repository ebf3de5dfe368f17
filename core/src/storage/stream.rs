use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::Result;
use crate::storage::ObjectMeta;

/// A value read in chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A value being written in chunks; see [`Storage::write`](crate::Storage::write).
///
/// Nothing is visible to readers until [`finish`](ValueWriter::finish)
/// returns. Dropping the writer without finishing discards what was written.
#[async_trait]
pub trait ValueWriter: Send {
    /// Appends `chunk` to the value.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Publishes the value atomically and durably.
    async fn finish(self: Box<Self>) -> Result<ObjectMeta>;

    /// Discards everything written; the previous value stays.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Reads a whole stream into one buffer (for tests and small values).
pub async fn collect_stream(mut stream: ByteStream) -> Result<Bytes> {
    let mut out = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}
