use futures::StreamExt;

use crate::error::Result;
use crate::key::Key;
use crate::storage::{ObjectMeta, PutOptions, Storage};

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
    let mut stream = src.read(from, None).await?;
    let options = PutOptions { metadata: meta.metadata, if_not_exists };
    let mut writer = dst.write(to, options).await?;
    while let Some(chunk) = stream.next().await {
        writer.write(chunk?).await?;
    }
    writer.finish().await
}
