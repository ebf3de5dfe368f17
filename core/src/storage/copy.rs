use futures::StreamExt;

use crate::error::Result;
use crate::key::Key;
use crate::storage::{Condition, MetadataChanges, ObjectMeta, PutOptions, Storage};

/// Copies the value and metadata of `from` on `src` to `to` on `dst`,
/// streaming, so memory stays bounded whatever the size. `if_not_exists`
/// makes the copy fail with `AlreadyExists` if `to` exists on `dst`.
pub async fn copy_value(
    src: &dyn Storage,
    from: &Key,
    dst: &dyn Storage,
    to: &Key,
    if_not_exists: bool,
) -> Result<ObjectMeta> {
    let meta = src.stat(from).await?;
    stream_value(
        src,
        from,
        dst,
        to,
        PutOptions { metadata: meta.metadata, if_not_exists, ..Default::default() },
    )
    .await
}

/// Streams the value of `from` on `src` into a streamed write of `to` on
/// `dst` with `options`. If reading or writing fails, the write is aborted,
/// so `to` keeps its previous value.
pub(crate) async fn stream_value<S: Storage + ?Sized, D: Storage + ?Sized>(
    src: &S,
    from: &Key,
    dst: &D,
    to: &Key,
    options: PutOptions,
) -> Result<ObjectMeta> {
    let mut stream = src.read(from, None).await?;
    let mut writer = dst.write(to, options).await?;
    while let Some(chunk) = stream.next().await {
        let written = match chunk {
            Ok(chunk) => writer.write(chunk).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(backend = %dst.name(), key = %to, error = %abort, "could not discard a failed copy");
            }
            return Err(e);
        }
    }
    writer.finish().await
}

/// Changes the metadata of `key` on `store` by rewriting the value with the
/// new map, streamed: the fallback of [`Storage::set_metadata`] for
/// backends that cannot update metadata alone. It costs a read and a write
/// of the whole value, and the condition is checked before the rewrite
/// starts, not atomically with it: a write that lands while the value is
/// being copied may be overwritten.
pub async fn rewrite_metadata<S: Storage + ?Sized>(
    store: &S,
    key: &Key,
    changes: &MetadataChanges,
    condition: &Condition,
) -> Result<ObjectMeta> {
    let meta = store.stat(key).await?;
    condition.check(&meta)?;
    let metadata = changes.applied_to(meta.metadata);
    stream_value(store, key, store, key, PutOptions::with_metadata(metadata)).await
}
