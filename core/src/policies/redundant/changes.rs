//! The changes a redundant set makes: put, delete, batch, rename and
//! sync, each sent to the members and acknowledged at the write quorum,
//! with the hints and tombstones that keep lagging members from serving
//! what they missed.

use std::time::Instant;

use super::*;

/// How long a metadata update waits for older writes of its key to finish
/// before it gives up with `Conflict`.
const SET_METADATA_WAIT: Duration = Duration::from_secs(10);

impl Shared {
    /// With every member's locks on `guards`' keys held, checks that none of
    /// the keys marked in `conditional` exists; returns the held locks.
    pub(super) async fn check_absent(
        &self,
        op: &'static str,
        guards: &[KeyGuard],
        conditional: &[bool],
    ) -> Result<Vec<Vec<Held>>> {
        let held = lock_all(guards, self.members.len()).await;
        for (guard, _) in guards.iter().zip(conditional).filter(|(_, c)| **c) {
            let key = guard.key();
            let hint = self.keys.hint(key);
            let (replicas, errors) = self.observe(key).await;
            match resolve(&replicas, hint.as_ref()) {
                Resolved::Absent { .. } => {}
                Resolved::Present { .. } => {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        "the key exists and the write asked that it did not; nothing was written",
                    )
                    .with_key(key.as_str())
                    .with_backend(self.name.as_str())
                    .with_operation(op))
                }
                Resolved::Unknown => return Err(self.unknown_error(key, op, &errors)),
            }
        }
        Ok(held)
    }

    /// Writes one value (a put) to the members.
    pub(super) async fn put(
        self: &Arc<Self>,
        key: &Key,
        value: Bytes,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let (rev, guards) = self.keys.enter_write([key], &self.clock);
        let stored = revision::encode(&options.metadata, rev);
        let (targets, skipped) = self.targets("put", key)?;
        let prelocked = if options.if_not_exists {
            Some(self.check_absent("put", &guards, &[true]).await?)
        } else {
            None
        };
        let size = value.len() as u64;
        let targets = targets
            .into_iter()
            .map(|m| {
                let (member, key, value, stored) =
                    (self.members[m].clone(), key.clone(), value.clone(), stored.clone());
                let op: MemberOp = Box::new(move |_| {
                    async move { member.put(&key, value, PutOptions::with_metadata(stored)).await.map(Some) }
                        .boxed()
                });
                (m, op)
            })
            .collect();
        let replication = Replication {
            op: "put",
            rev,
            writes: vec![(key.clone(), false)],
            guards,
            targets,
            skipped,
            prelocked,
            after_all: None,
        };
        let stored = self.replicate(replication).await?;
        Ok(acknowledged(key, rev, size, options.metadata, stored))
    }

    pub(super) async fn delete(self: &Arc<Self>, key: &Key) -> Result<()> {
        let (rev, guards) = self.keys.enter_write([key], &self.clock);
        let (targets, skipped) = self.targets("delete", key)?;
        let targets = targets
            .into_iter()
            .map(|m| {
                let (member, key) = (self.members[m].clone(), key.clone());
                let op: MemberOp =
                    Box::new(move |_| async move { member.delete(&key).await.map(|()| None) }.boxed());
                (m, op)
            })
            .collect();
        let replication = Replication {
            op: "delete",
            rev,
            writes: vec![(key.clone(), true)],
            guards,
            targets,
            skipped,
            prelocked: None,
            after_all: None,
        };
        self.replicate(replication).await.map(drop)
    }

    pub(super) async fn batch(self: &Arc<Self>, ops: Vec<BatchOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let first = ops[0].key().to_string();
        if !self.capabilities.atomic_batch {
            let lacking: Vec<&str> =
                self.members.iter().filter(|m| !m.capabilities().atomic_batch).map(|m| m.name()).collect();
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "members without atomic batches ({}) could apply part of a batch; write the operations one by one",
                    lacking.join(", ")
                ),
            )
            .with_key(first)
            .with_backend(self.name.as_str())
            .with_operation("batch"));
        }
        // Each key once, in order, with whether the batch leaves it deleted
        // and whether it must not exist beforehand.
        let mut keys: BTreeMap<Key, (bool, bool)> = BTreeMap::new();
        for op in &ops {
            let entry = keys.entry(op.key().clone()).or_insert((false, false));
            match op {
                BatchOp::Put { if_not_exists, .. } => *entry = (false, entry.1 || *if_not_exists),
                BatchOp::Delete { .. } => entry.0 = true,
            }
        }
        let writes: Vec<(Key, bool)> = keys.iter().map(|(k, (delete, _))| (k.clone(), *delete)).collect();
        let conditional: Vec<bool> = keys.values().map(|(_, c)| *c).collect();
        let (rev, guards) = self.keys.enter_write(writes.iter().map(|(k, _)| k), &self.clock);
        let (targets, skipped) = self.targets("batch", &first)?;
        let prelocked = if conditional.iter().any(|c| *c) {
            Some(self.check_absent("batch", &guards, &conditional).await?)
        } else {
            None
        };
        // Stored form: revision in the metadata, conditions already checked.
        let stored: Arc<Vec<(usize, BatchOp)>> = Arc::new(
            ops.into_iter()
                .map(|op| {
                    let index = writes.partition_point(|(k, _)| k < op.key());
                    let op = match op {
                        BatchOp::Put { key, value, metadata, .. } => BatchOp::Put {
                            key,
                            value,
                            metadata: revision::encode(&metadata, rev),
                            if_not_exists: false,
                        },
                        delete => delete,
                    };
                    (index, op)
                })
                .collect(),
        );
        let targets = targets
            .into_iter()
            .map(|m| {
                let (member, stored) = (self.members[m].clone(), stored.clone());
                let op: MemberOp = Box::new(move |live: Vec<bool>| {
                    async move {
                        let ops = stored.iter().filter(|(i, _)| live[*i]).map(|(_, op)| op.clone()).collect();
                        member.batch(ops).await.map(|()| None)
                    }
                    .boxed()
                });
                (m, op)
            })
            .collect();
        let replication =
            Replication { op: "batch", rev, writes, guards, targets, skipped, prelocked, after_all: None };
        self.replicate(replication).await.map(drop)
    }

    pub(super) async fn rename(self: &Arc<Self>, from: &Key, to: &Key) -> Result<()> {
        if !self.capabilities.rename {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "some members cannot rename atomically, so neither can this redundant set",
            )
            .with_key(from.as_str())
            .with_backend(self.name.as_str())
            .with_operation("rename"));
        }
        if from == to {
            return match self.locate(from).await.resolved {
                Resolved::Present { .. } => Ok(()),
                Resolved::Absent { .. } => Err(self.not_found(from, "rename")),
                Resolved::Unknown => Err(self.unknown_error(from, "rename", &[])),
            };
        }
        let mut writes = vec![(from.clone(), true), (to.clone(), false)];
        writes.sort();
        let from_index = writes.iter().position(|(k, _)| k == from).unwrap_or(0);
        let (rev, guards) = self.keys.enter_write(writes.iter().map(|(k, _)| k), &self.clock);
        let (targets, mut skipped) = self.targets("rename", from)?;
        let mut held = lock_all(&guards, self.members.len()).await;

        // Bring the source's copies in line, so each member renames the current one.
        let hint = self.keys.hint(from);
        let (mut replicas, errors) = self.observe(from).await;
        let mut resolved = resolve(&replicas, hint.as_ref());
        if replicas.iter().any(|r| resolved.matches(r) == Some(false)) {
            let mut locks: Vec<&mut Held> = held.iter_mut().filter_map(|h| h.get_mut(from_index)).collect();
            self.repair_held(from, &mut locks).await;
            let hint = self.keys.hint(from);
            replicas = self.observe(from).await.0;
            resolved = resolve(&replicas, hint.as_ref());
        }
        let source_rev = match resolved {
            Resolved::Present { rev, .. } => rev,
            Resolved::Absent { .. } => return Err(self.not_found(from, "rename")),
            Resolved::Unknown => return Err(self.unknown_error(from, "rename", &errors)),
        };
        let mut native = Vec::new();
        for m in targets {
            match replicas[m].revision() {
                Some(r) if r == source_rev => native.push(m),
                _ => skipped.push((
                    m,
                    Error::new(
                        ErrorKind::Unavailable,
                        "the member lacks the current copy of the source; the scrubber moves it later",
                    )
                    .with_key(from.as_str())
                    .with_backend(self.members[m].name()),
                )),
            }
        }
        if native.len() < self.quorum {
            return Err(self.quorum_error("rename", from, 0, &skipped));
        }
        let targets = native
            .into_iter()
            .map(|m| {
                let (member, from, to) = (self.members[m].clone(), from.clone(), to.clone());
                let op: MemberOp =
                    Box::new(move |_| async move { member.rename(&from, &to).await.map(|()| None) }.boxed());
                (m, op)
            })
            .collect();
        // If some member missed the rename, its old target may outrank the
        // moved copy's revision: re-stamp the target where the rename landed.
        let shared = self.clone();
        let target = to.clone();
        let after_all: replicate::AfterAll = Box::new(move |succeeded: Vec<usize>| {
            async move {
                if succeeded.len() == shared.members.len() {
                    return;
                }
                for m in succeeded {
                    let member = &*shared.members[m];
                    let restamp = MetadataChanges::new().set(REVISION_KEY, rev.to_string());
                    if let Err(e) = member.set_metadata(&target, &restamp, &Condition::Exists).await {
                        tracing::warn!(
                            set = %shared.name, member = %member.name(), key = %target, error = %e,
                            "could not re-stamp a renamed copy; it is repaired later"
                        );
                        shared.keys.lagging(&target, m, rev, false);
                    }
                }
            }
            .boxed()
        });
        let replication = Replication {
            op: "rename",
            rev,
            writes,
            guards,
            targets,
            skipped,
            prelocked: Some(held),
            after_all: Some(after_all),
        };
        self.replicate(replication).await.map(drop)
    }

    /// Changes the metadata on each member that holds the current copy,
    /// stamping the change's revision, after bringing the copies in line
    /// (as `rename` does): a member with an older copy is skipped and
    /// marked lagging, so its old bytes can never win with the new revision;
    /// the scrubber copies the value there later.
    pub(super) async fn set_metadata(
        self: &Arc<Self>,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        const OP: &str = "set_metadata";
        // An update applies to the value every older write left: it waits
        // until no write of the key with a lower revision is in flight (a
        // write of a lower revision landing after it would be skipped as
        // superseded, and with it either this update or that write).
        let deadline = Instant::now() + SET_METADATA_WAIT;
        let mut pause = Duration::from_millis(1);
        let (rev, guards, held, replicas, current, current_rev) = loop {
            let (rev, guards) = self.keys.enter_write([key], &self.clock);
            let mut held = lock_all(&guards, self.members.len()).await;
            if !self.keys.older_in_flight(key, rev) {
                let hint = self.keys.hint(key);
                let (mut replicas, errors) = self.observe(key).await;
                let mut resolved = resolve(&replicas, hint.as_ref());
                if replicas.iter().any(|r| resolved.matches(r) == Some(false)) {
                    let mut locks: Vec<&mut Held> = held.iter_mut().filter_map(|h| h.get_mut(0)).collect();
                    self.repair_held(key, &mut locks).await;
                    let hint = self.keys.hint(key);
                    replicas = self.observe(key).await.0;
                    resolved = resolve(&replicas, hint.as_ref());
                }
                match resolved {
                    Resolved::Present { meta, rev: current_rev, .. } if current_rev < rev => {
                        break (rev, guards, held, replicas, meta, current_rev)
                    }
                    Resolved::Present { .. } => {}
                    Resolved::Absent { .. } => return Err(self.not_found(key, OP)),
                    Resolved::Unknown => return Err(self.unknown_error(key, OP, &errors)),
                }
            }
            drop(held);
            drop(guards);
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "other writes of the key kept arriving for {}s; the metadata was not changed, retry",
                        SET_METADATA_WAIT.as_secs()
                    ),
                )
                .with_key(key.as_str())
                .with_backend(self.name.as_str())
                .with_operation(OP));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let (targets, mut skipped) = self.targets(OP, key)?;
        let public = revision::public_meta(current);
        condition.check(&public).map_err(|e| e.with_backend(self.name.as_str()).with_operation(OP))?;
        let mut native = Vec::new();
        for m in targets {
            match &replicas[m] {
                Replica::Present(copy) if revision::revision(&copy.metadata) == current_rev => {
                    native.push((m, copy.version.clone()))
                }
                _ => skipped.push((
                    m,
                    Error::new(
                        ErrorKind::Unavailable,
                        "the member lacks the current copy; the scrubber copies it there later",
                    )
                    .with_key(key.as_str())
                    .with_backend(self.members[m].name()),
                )),
            }
        }
        if native.len() < self.quorum {
            return Err(self.quorum_error(OP, key, 0, &skipped));
        }
        let stored_changes = revision::encode_changes(changes, rev);
        let targets = native
            .into_iter()
            .map(|(m, version)| {
                let (member, key, stored_changes) =
                    (self.members[m].clone(), key.clone(), stored_changes.clone());
                let op: MemberOp = Box::new(move |pending: Vec<bool>| {
                    async move {
                        if !pending.first().copied().unwrap_or(true) {
                            return Ok(None);
                        }
                        let condition = Condition::VersionIs(version);
                        member.set_metadata(&key, &stored_changes, &condition).await.map(Some)
                    }
                    .boxed()
                });
                (m, op)
            })
            .collect();
        let replication = Replication {
            op: OP,
            rev,
            writes: vec![(key.clone(), false)],
            guards,
            targets,
            skipped,
            prelocked: Some(held),
            after_all: None,
        };
        let stored = self.replicate(replication).await?;
        Ok(acknowledged(key, rev, public.size, changes.applied_to(public.metadata), stored))
    }

    pub(super) async fn sync(&self) -> Result<()> {
        let (targets, skipped) = self.targets("sync", "")?;
        let answers = join_all(targets.iter().map(|m| self.members[*m].sync())).await;
        let mut failures = skipped;
        let mut ok = 0;
        for (m, answer) in targets.into_iter().zip(answers) {
            match answer {
                Ok(()) => ok += 1,
                Err(e) => failures.push((m, e)),
            }
        }
        if ok >= self.quorum {
            Ok(())
        } else {
            Err(self.quorum_error("sync", "", ok, &failures))
        }
    }
}

/// What a write returns to its caller: the caller's metadata, the revision
/// as version, the member's size and time when one reported them.
pub(super) fn acknowledged(
    key: &Key,
    rev: u64,
    size: u64,
    metadata: Metadata,
    stored: Option<ObjectMeta>,
) -> ObjectMeta {
    ObjectMeta {
        key: key.clone(),
        size: stored.as_ref().map_or(size, |m| m.size),
        modified: stored.map_or_else(SystemTime::now, |m| m.modified),
        version: rev.to_string(),
        metadata,
    }
}
