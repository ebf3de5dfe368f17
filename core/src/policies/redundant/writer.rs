//! Streamed writes: each chunk fanned out to every member's writer; the
//! value is published by a quorum of `finish` calls.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{join_all, FutureExt};

use crate::error::{Error, Result};
use crate::key::Key;
use crate::storage::{Metadata, ObjectMeta, PutOptions, ValueWriter};

use super::changes::acknowledged;
use super::hints::KeyGuard;
use super::replicate::{MemberOp, Replication};
use super::{revision, Shared};

/// A value being streamed to the members of a redundant set.
///
/// Memory stays bounded by one chunk: a chunk is shared (not copied) by the
/// member writers, and the next is taken only once every member took this
/// one. A member that fails is dropped (its partial value discarded) and
/// repaired later; once fewer than the quorum remain, the write fails.
pub(super) struct RedundantWriter {
    shared: Arc<Shared>,
    key: Key,
    rev: u64,
    metadata: Metadata,
    if_not_exists: bool,
    guard: KeyGuard,
    writers: Vec<(usize, Box<dyn ValueWriter>)>,
    dropped: Vec<(usize, Error)>,
    size: u64,
}

impl RedundantWriter {
    /// Opens a writer on every healthy member.
    pub(super) async fn open(
        shared: &Arc<Shared>,
        key: &Key,
        options: PutOptions,
    ) -> Result<Box<dyn ValueWriter>> {
        // Held from the start, so that a write of this key acknowledged while
        // the stream runs is not overwritten by this older revision.
        let (rev, mut guards) = shared.keys.enter_write([key], &shared.clock);
        let guard = guards.remove(0);
        let stored = revision::encode(&options.metadata, rev);
        let (targets, mut dropped) = shared.targets("write", key)?;
        let opened = join_all(
            targets.iter().map(|m| shared.members[*m].write(key, PutOptions::with_metadata(stored.clone()))),
        )
        .await;
        let mut writers = Vec::with_capacity(targets.len());
        for (m, result) in targets.into_iter().zip(opened) {
            match result {
                Ok(writer) => writers.push((m, writer)),
                Err(e) => dropped.push((m, e)),
            }
        }
        if writers.len() < shared.quorum {
            return Err(shared.quorum_error("write", key, writers.len(), &dropped));
        }
        Ok(Box::new(RedundantWriter {
            shared: shared.clone(),
            key: key.clone(),
            rev,
            metadata: options.metadata,
            if_not_exists: options.if_not_exists,
            guard,
            writers,
            dropped,
            size: 0,
        }))
    }

    fn broken(&self) -> Error {
        self.shared.quorum_error("write", &self.key, self.writers.len(), &self.dropped)
    }
}

#[async_trait]
impl ValueWriter for RedundantWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if self.writers.len() < self.shared.quorum {
            return Err(self.broken());
        }
        let results = join_all(self.writers.iter_mut().map(|(_, w)| w.write(chunk.clone()))).await;
        for ((m, writer), result) in std::mem::take(&mut self.writers).into_iter().zip(results) {
            match result {
                Ok(()) => self.writers.push((m, writer)),
                Err(e) => {
                    tracing::warn!(
                        set = %self.shared.name, member = %self.shared.members[m].name(), key = %self.key,
                        error = %e, "a member failed during a streamed write; it is repaired later"
                    );
                    // Dropping the member's writer discards its partial value.
                    drop(writer);
                    self.dropped.push((m, e));
                }
            }
        }
        self.size += chunk.len() as u64;
        if self.writers.len() < self.shared.quorum {
            self.writers.clear();
            return Err(self.broken());
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        if self.writers.len() < self.shared.quorum {
            return Err(self.broken());
        }
        let RedundantWriter { shared, key, rev, metadata, if_not_exists, guard, writers, dropped, size } =
            *self;
        let guards = vec![guard];
        // On a refusal the member writers drop here, discarding their values.
        let prelocked =
            if if_not_exists { Some(shared.check_absent("write", &guards, &[true]).await?) } else { None };
        let targets = writers
            .into_iter()
            .map(|(m, writer)| {
                let op: MemberOp = Box::new(move |_| async move { writer.finish().await.map(Some) }.boxed());
                (m, op)
            })
            .collect();
        let replication = Replication {
            op: "write",
            rev,
            writes: vec![(key.clone(), false)],
            guards,
            targets,
            skipped: dropped,
            prelocked,
            after_all: None,
        };
        let stored = shared.replicate(replication).await?;
        Ok(acknowledged(&key, rev, size, metadata, stored))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let results = join_all(self.writers.into_iter().map(|(_, w)| w.abort())).await;
        // Every member's value is discarded whatever the answers; report the first failure.
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }
}
