//! Read-ahead of one handle over a clean file: ranged reads of the store,
//! fetched ahead in growing windows.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tierfs_core::{Key, Session};

use super::store::Store;
use crate::errno::{FsError, FsResult};

/// Smallest read-ahead window.
const WINDOW_MIN: u64 = 256 * 1024;
/// Largest read-ahead window.
const WINDOW_MAX: u64 = 8 << 20;
/// Windows fetched in the background ahead of the one being served: at
/// first, and at most (the reader waiting on a fetch deepens it by one).
const DEPTH_MIN: usize = 2;
const DEPTH_MAX: usize = 8;
/// How far from the last read a read may land and still count as sequential
/// (the kernel sends read-ahead requests in parallel, slightly out of order).
const SEQUENTIAL_SLACK: u64 = 4 << 20;

/// Read-ahead of one handle over a clean file: after two sequential reads,
/// reads fetch a window, and the next windows are fetched in the
/// background while the current one is served: two at first, one more each
/// time the reader has to wait for one (a store slow per request, such as
/// an object store, ends up with eight in flight; a local disk that keeps
/// ahead stays at two). Each window is twice the
/// one before, up to 8 MiB, so that a store with a high cost per request
/// (an object store) is asked for few, large ranges, and several at once.
#[derive(Debug, Default)]
pub struct ReadAhead {
    next: u64,
    streak: u32,
    window: u64,
    buffer: Option<(u64, u64, Bytes)>,
    prefetch: VecDeque<Prefetch>,
    depth: usize,
}

/// A window being fetched: generation, start, stop and the fetch.
#[derive(Debug)]
struct Prefetch {
    gen: u64,
    start: u64,
    stop: u64,
    task: tokio::task::JoinHandle<tierfs_core::Result<Bytes>>,
}

impl ReadAhead {
    /// Reads `size` bytes at `offset` of `key` (of `file_size` bytes, in
    /// content generation `generation`).
    #[allow(clippy::too_many_arguments)]
    pub async fn read(
        &mut self,
        store: &Arc<Store>,
        session: &Session,
        key: &Key,
        offset: u64,
        size: u64,
        file_size: u64,
        generation: u64,
    ) -> FsResult<Bytes> {
        let end = (offset + size).min(file_size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let sequential =
            offset.abs_diff(self.next) <= SEQUENTIAL_SLACK && (self.streak > 0 || offset == self.next);
        self.next = end;
        if let Some(bytes) = self.buffered(offset, end, generation) {
            return Ok(bytes);
        }
        if let Some(bytes) =
            self.take_prefetched(store, session, key, offset, end, file_size, generation).await
        {
            return Ok(bytes);
        }
        if !sequential {
            self.streak = 0;
            self.window = 0;
            return Ok(store.get_range(session, key, offset..end).await?);
        }
        if let Some((gen, start, _)) = &self.buffer {
            if *gen == generation && offset < *start {
                // A read the kernel sent a little out of order, just behind
                // the window: served alone, the read-ahead goes on.
                return Ok(store.get_range(session, key, offset..end).await?);
            }
        }
        self.streak += 1;
        if self.streak < 2 {
            return Ok(store.get_range(session, key, offset..end).await?);
        }
        self.cancel_prefetch();
        self.window = (self.window * 2).clamp(WINDOW_MIN, WINDOW_MAX).max(end - offset);
        let stop = (offset + self.window).min(file_size);
        let bytes = store.get_range(session, key, offset..stop).await?;
        self.buffer = Some((generation, offset, bytes));
        self.refill(store, session, key, file_size, generation);
        self.buffered(offset, end, generation)
            .ok_or_else(|| FsError::new(libc::EIO, format!("`{key}` shrank while being read")))
    }

    fn buffered(&self, offset: u64, end: u64, generation: u64) -> Option<Bytes> {
        let (gen, start, bytes) = self.buffer.as_ref()?;
        if *gen != generation || offset < *start || end > start + bytes.len() as u64 {
            return None;
        }
        Some(bytes.slice((offset - start) as usize..(end - start) as usize))
    }

    /// Serves `offset..end` from the buffer and the prefetched windows that
    /// follow it (a read may span two windows), moving the buffer forward
    /// and fetching further ahead; `None` when they do not hold the range.
    #[allow(clippy::too_many_arguments)]
    async fn take_prefetched(
        &mut self,
        store: &Arc<Store>,
        session: &Session,
        key: &Key,
        offset: u64,
        end: u64,
        file_size: u64,
        generation: u64,
    ) -> Option<Bytes> {
        let mut head = BytesMut::new();
        let mut pos = offset;
        loop {
            if let Some(bytes) = self.buffered(pos, end, generation) {
                if head.is_empty() {
                    return Some(bytes);
                }
                head.extend_from_slice(&bytes);
                return Some(head.freeze());
            }
            if let Some((gen, start, bytes)) = &self.buffer {
                let stop = start + bytes.len() as u64;
                if *gen == generation && *start <= pos && pos < stop {
                    head.extend_from_slice(&bytes[(pos - start) as usize..]);
                    pos = stop;
                }
            }
            let front = self.prefetch.front()?;
            if front.gen != generation || pos < front.start || pos >= front.stop {
                return None;
            }
            let Prefetch { start, stop, task, .. } = self.prefetch.pop_front()?;
            if !task.is_finished() {
                self.depth = (self.depth + 1).clamp(DEPTH_MIN, DEPTH_MAX);
            }
            match task.await {
                Ok(Ok(bytes)) if bytes.len() as u64 == stop - start => {
                    self.buffer = Some((generation, start, bytes));
                }
                _ => {
                    self.cancel_prefetch();
                    return None;
                }
            }
            self.window = (self.window * 2).clamp(WINDOW_MIN, WINDOW_MAX);
            self.refill(store, session, key, file_size, generation);
        }
    }

    /// Starts fetches after the buffer and the windows already on their
    /// way, until `depth` are.
    fn refill(&mut self, store: &Arc<Store>, session: &Session, key: &Key, file_size: u64, gen: u64) {
        if self.window == 0 {
            return;
        }
        let mut start = match (self.prefetch.back(), &self.buffer) {
            (Some(last), _) => last.stop,
            (None, Some((_, start, bytes))) => start + bytes.len() as u64,
            (None, None) => return,
        };
        let depth = self.depth.max(DEPTH_MIN);
        while self.prefetch.len() < depth && start < file_size {
            let stop = (start + self.window).min(file_size);
            let (store, session, key) = (store.clone(), session.clone(), key.clone());
            let task = tokio::spawn(async move { store.get_range(&session, &key, start..stop).await });
            self.prefetch.push_back(Prefetch { gen, start, stop, task });
            start = stop;
        }
    }

    fn cancel_prefetch(&mut self) {
        for p in self.prefetch.drain(..) {
            p.task.abort();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.cancel_prefetch();
    }
}
