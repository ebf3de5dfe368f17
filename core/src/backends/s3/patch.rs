//! Patches of large objects as multipart uploads whose unchanged parts are
//! copies made by the store from the object itself (`UploadPartCopy`):
//! only the parts a patch touches cross the network. A one-byte change of a
//! 1 GiB object uploads one part (`part_size_mib`, 8 MiB by default); an
//! append uploads the appended bytes (the old end falls on a part boundary
//! when the object's size is a multiple of the part size) or one part.
//!
//! The value is cut into parts of the same size (the last one shorter). A
//! part no write touches and that lies within the bytes kept from the old
//! value is copied on the server; every other part is built here (the old
//! bytes read with a ranged `GET`, zeros past them, the writes laid over)
//! and uploaded. Every copy and every read is conditioned on the ETag the
//! patch started from, so a write landing meanwhile fails the upload (it is
//! aborted) and the patch starts again from the new value. The completion
//! is the commit point: readers see the old object or the new one. As for
//! metadata updates, S3 cannot condition the completion itself, so a write
//! from another process between the last copy and the completion is
//! overwritten; writes of this process wait for the patch.

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore};

use super::copy::{xml_value, Answer};
use super::{meta, Attempt, S3Storage, META_ATTRIBUTE};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{rewrite_patched, Condition, ObjectMeta, Patch};

/// The smallest part S3 takes, but for the last one.
const MIN_PART: u64 = 5 << 20;
/// The largest part S3 takes (and the largest range one copy may name).
const MAX_PART: u64 = 5 << 30;
/// The most parts an upload may have.
const MAX_PARTS: u64 = 10_000;
const OP: &str = "patch";

/// The parts of a patched value of `new_len` bytes, of which the first
/// `keep` are the old value's: the value cut at multiples of `part`, each
/// piece that no write touches and that lies within the kept bytes copied,
/// consecutive copied pieces joined into one copy (up to the largest part),
/// so a change in the middle of a large value is three requests: a copy, an
/// upload, a copy. Every part but the last is at least `part` long.
fn plan(patch: &Patch, new_len: u64, keep: u64, part: u64) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for i in 0..new_len.div_ceil(part).max(1) {
        let (start, end) = (i * part, ((i + 1) * part).min(new_len));
        let touched = patch.writes().iter().any(|(o, d)| *o < end && o + d.len() as u64 > start);
        let copied = !touched && end <= keep;
        match parts.last_mut() {
            Some(last) if copied && last.copied && end - last.start <= MAX_PART => last.end = end,
            _ => parts.push(Part { number: parts.len() + 1, start, end, copied }),
        }
    }
    parts
}

/// One part of the patched value: its number, its range, and whether the
/// store copies it from the old object.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    number: usize,
    start: u64,
    end: u64,
    copied: bool,
}

impl S3Storage {
    /// See the module documentation; values smaller than a part are
    /// rewritten whole (one `PUT`).
    pub(super) async fn patch_in_parts(
        &self,
        key: &Key,
        patch: &Patch,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        patch.validate().map_err(|e| self.context(e, key))?;
        let patched = self
            .conditioned(key, OP, "patch it", condition, |current: ObjectMeta| async move {
                let new_len = patch.final_len(current.size);
                let part = (self.inner.part_size as u64).max(MIN_PART).max(new_len.div_ceil(MAX_PARTS));
                if current.size < part || current.version.is_empty() {
                    return Ok(Attempt::Rewrite);
                }
                match self.upload_patched(key, patch, &current, part).await {
                    Err(e) if e.kind() == ErrorKind::Conflict => Ok(Attempt::Changed),
                    result => result.map(Attempt::Done),
                }
            })
            .await?;
        match patched {
            Some(meta) => Ok(meta),
            None => rewrite_patched(self, key, patch, condition).await,
        }
    }

    fn context(&self, e: Error, key: &Key) -> Error {
        e.or_key(key.as_str()).with_backend(self.inner.name.clone()).with_operation(OP)
    }

    /// One attempt: a `Conflict` when the object changed meanwhile.
    async fn upload_patched(
        &self,
        key: &Key,
        patch: &Patch,
        current: &ObjectMeta,
        part: u64,
    ) -> Result<ObjectMeta> {
        let started = std::time::Instant::now();
        let new_len = patch.final_len(current.size);
        let keep = current.size.min(patch.new_len().unwrap_or(u64::MAX));
        let metadata = patch.metadata_changes().applied_to(current.metadata.clone());
        let credential =
            self.inner.store.credentials().get_credential().await.map_err(|e| self.err(e, OP, key))?;
        let path = self.path(key);
        let copier = &self.inner.copier;
        let mut headers = Vec::new();
        if !metadata.is_empty() {
            headers.push((format!("x-amz-meta-{META_ATTRIBUTE}"), meta::encode(&metadata)));
        }
        let created =
            copier.send(&credential, http::Method::POST, &path, "?uploads", &headers, Bytes::new()).await?;
        let upload_id = match xml_value(&created.body, "UploadId") {
            Some(id) if created.ok() => id.to_owned(),
            _ => return Err(created.error("start of a multipart upload")),
        };
        let id_query = super::path::percent_encode(&upload_id, b"-_.~");
        let parts = plan(patch, new_len, keep, part);
        let created_ms = started.elapsed().as_millis() as u64;
        let sends: Vec<_> = parts
            .iter()
            .map(|p| self.send_part(key, patch, current, keep, &id_query, p, &credential))
            .collect();
        let uploaded = futures::stream::iter(sends)
            .buffered(self.inner.parts_in_flight.max(1))
            .try_collect::<Vec<String>>()
            .await;
        let completed = match uploaded {
            Ok(etags) => {
                let mut xml = String::from("<CompleteMultipartUpload>");
                for (p, etag) in parts.iter().zip(&etags) {
                    xml.push_str(&format!(
                        "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                        p.number
                    ));
                }
                xml.push_str("</CompleteMultipartUpload>");
                let query = format!("?uploadId={id_query}");
                match copier.send(&credential, http::Method::POST, &path, &query, &[], Bytes::from(xml)).await
                {
                    Ok(answer) if answer.ok() => Ok(answer),
                    Ok(answer) => Err(answer.error("completion of a multipart upload")),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        tracing::debug!(
            key = %key,
            parts = parts.len(),
            created_ms,
            copied = parts.iter().filter(|p| p.copied).count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "patch uploaded",
        );
        let answer = match completed {
            Ok(answer) => answer,
            Err(e) => {
                let query = format!("?uploadId={id_query}");
                match copier.send(&credential, http::Method::DELETE, &path, &query, &[], Bytes::new()).await {
                    Ok(a) if a.ok() => {}
                    Ok(a) => {
                        tracing::warn!(key = %key, error = %a.error("abort"), "a failed patch's upload was not aborted")
                    }
                    Err(abort) => {
                        tracing::warn!(key = %key, error = %abort, "a failed patch's upload was not aborted")
                    }
                }
                return Err(e);
            }
        };
        self.inner.listings.clear();
        // The completion names the new version; a store that does not
        // costs a HEAD.
        match answer.etag() {
            Some(version) => Ok(ObjectMeta {
                key: key.clone(),
                size: new_len,
                modified: std::time::SystemTime::now(),
                version,
                metadata,
            }),
            None => self.head(key, OP).await,
        }
    }

    /// Copies or uploads part `p`; returns its ETag.
    #[allow(clippy::too_many_arguments)]
    async fn send_part(
        &self,
        key: &Key,
        patch: &Patch,
        current: &ObjectMeta,
        keep: u64,
        id_query: &str,
        p: &Part,
        credential: &object_store::aws::AwsCredential,
    ) -> Result<String> {
        let path = self.path(key);
        let copier = &self.inner.copier;
        let query = format!("?partNumber={}&uploadId={id_query}", p.number);
        let answer: Answer = if p.copied {
            let headers = [
                ("x-amz-copy-source".to_owned(), copier.source(&path)),
                ("x-amz-copy-source-range".to_owned(), format!("bytes={}-{}", p.start, p.end - 1)),
                ("x-amz-copy-source-if-match".to_owned(), current.version.clone()),
            ];
            copier.send(credential, http::Method::PUT, &path, &query, &headers, Bytes::new()).await?
        } else {
            let mut buf = BytesMut::zeroed((p.end - p.start) as usize);
            let old_end = p.end.min(keep);
            if p.start < old_end {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(p.start..old_end)),
                    if_match: Some(current.version.clone()),
                    ..Default::default()
                };
                let old = self.inner.store.get_opts(&path, options).await.map_err(|e| match e {
                    object_store::Error::Precondition { .. } => {
                        Error::new(ErrorKind::Conflict, "the object changed during the patch")
                    }
                    e => self.err(e, OP, key),
                })?;
                let mut at = 0usize;
                let mut stream = old.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.err(e, OP, key))?;
                    let n = chunk.len().min(buf.len() - at);
                    buf[at..at + n].copy_from_slice(&chunk[..n]);
                    at += n;
                }
                if at as u64 != old_end - p.start {
                    return Err(Error::new(ErrorKind::Conflict, "the object changed during the patch"));
                }
            }
            patch.overlay(p.start, &mut buf);
            copier.send(credential, http::Method::PUT, &path, &query, &[], buf.freeze()).await?
        };
        match answer.etag() {
            Some(etag) if answer.ok() => Ok(etag),
            _ if answer.ok() => Err(Error::new(ErrorKind::Unavailable, "the store gave no ETag for a part")),
            _ => Err(answer.error(if p.copied { "copy of a part" } else { "upload of a part" })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(parts: &[Part]) -> Vec<(u64, u64, bool)> {
        parts.iter().map(|p| (p.start, p.end, p.copied)).collect()
    }

    #[test]
    fn untouched_pieces_are_joined_into_copies() {
        const M: u64 = 1 << 20;
        // One byte in the middle of 64 MiB, 8 MiB parts: copy, upload, copy.
        let p = Patch::new().write(30 * M, vec![1]);
        assert_eq!(
            shape(&plan(&p, 64 * M, 64 * M, 8 * M)),
            [(0, 24 * M, true), (24 * M, 32 * M, false), (32 * M, 64 * M, true)]
        );
        // An append at a part boundary uploads the appended bytes only.
        let p = Patch::new().write(64 * M, vec![1; 4096]);
        assert_eq!(
            shape(&plan(&p, 64 * M + 4096, 64 * M, 8 * M)),
            [(0, 64 * M, true), (64 * M, 64 * M + 4096, false)]
        );
        // A cut keeps copying what it keeps; an extension uploads the piece it grows.
        let p = Patch::new().set_len(20 * M);
        assert_eq!(shape(&plan(&p, 20 * M, 20 * M, 8 * M)), [(0, 20 * M, true)]);
        let p = Patch::new().set_len(20 * M);
        assert_eq!(shape(&plan(&p, 20 * M, 18 * M, 8 * M)), [(0, 16 * M, true), (16 * M, 20 * M, false)]);
        // Parts are numbered from 1 in order; no copy names more than the largest part.
        let big = plan(&Patch::new(), 12 << 30, 12 << 30, 8 * M);
        assert_eq!(big.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(big.iter().all(|p| p.end - p.start <= MAX_PART));
        assert_eq!(big.last().unwrap().end, 12 << 30);
    }
}
