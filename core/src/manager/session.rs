//! `Session`: the manager seen by one principal, as a [`Storage`].

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::router::Route;
use super::security::{Check, Security};
use super::state::ManagerState;
use super::Shared;
use crate::access::{Principal, StorageOperationType as Op};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    copy_value, BatchOp, ByteStream, Capabilities, Condition, ListOptions, ListPage, LocalFile,
    MetadataChanges, ObjectMeta, Operation, Patch, PutOptions, Storage, ValueWriter,
};

/// Every operation of the manager, performed as one principal.
///
/// A `Session` is cheap to clone and safe to share between tasks. It is a
/// [`Storage`], so anything written against the trait works on a manager.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    principal: Arc<Principal>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>, principal: Principal) -> Self {
        shared.saw(&principal);
        Session { shared, principal: Arc::new(principal) }
    }

    /// Who this session acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub(crate) fn state(&self) -> Arc<ManagerState> {
        self.shared.state.load_full()
    }

    pub(crate) fn security(&self) -> Arc<Security> {
        self.shared.security.read().clone()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether no access rule or audit log is configured: nothing to check or record.
    #[inline]
    pub(crate) fn open_access(&self) -> bool {
        self.shared.open_access.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Checks `op` on `key`, records it, and returns the stack serving it.
    fn stack_for(&self, op: Operation, key: &Key) -> Result<Arc<dyn Storage>> {
        if self.open_access() {
            return Ok(self.shared.state.load().router.route(key).stack.clone());
        }
        let state = self.state();
        self.authorize(&state, op.audit_label(), &[Check::key(access_of(op), key)])?;
        Ok(state.router.route(key).stack.clone())
    }

    /// Checks `op` on `key` and records it like [`Session::stack_for`], then
    /// answers with `now` (a `*_now` call) from the stack serving `key`
    /// when it can; otherwise hands the stack back for the full call.
    fn serve<T>(
        &self,
        op: Operation,
        key: &Key,
        now: impl FnOnce(&Route) -> Option<Result<T>>,
    ) -> std::result::Result<Result<T>, Arc<dyn Storage>> {
        let state = if self.open_access() {
            self.shared.state.load()
        } else {
            let state = self.shared.state.load();
            if let Err(e) = self.authorize(&state, op.audit_label(), &[Check::key(access_of(op), key)]) {
                return Ok(Err(e));
            }
            state
        };
        let route = state.router.route(key);
        now(route).ok_or_else(|| route.stack.clone())
    }
}

/// The access class of a call on one key.
fn access_of(op: Operation) -> Op {
    op.access().expect("a call on one key has one access class")
}

#[async_trait]
impl Storage for Session {
    fn name(&self) -> &str {
        "manager"
    }

    /// What every route offers: a capability holds only if it holds for
    /// each policy stack. Rename is always offered (emulated where needed).
    fn capabilities(&self) -> Capabilities {
        let state = self.state();
        state.router.routes().fold(Capabilities::ALL, |caps, route| {
            caps.and(Capabilities { rename: true, ..route.stack.capabilities() })
        })
    }

    fn is_healthy(&self) -> bool {
        self.state().router.routes().all(|r| r.stack.is_healthy())
    }

    /// Written out rather than `async`. With no access rule or audit log
    /// configured, the stack is asked at once (in the call, not at the first
    /// poll): if it answers without waiting ([`Storage::get_now`], an
    /// in-memory backend), the future returned is a ready one, with no state
    /// machine around it; a read has no effect to defer. Otherwise the
    /// whole call, checks included, runs when the future is polled.
    fn get<'a, 'b, 'c>(&'a self, key: &'b Key) -> BoxFuture<'c, Result<Bytes>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        if self.open_access() {
            if let Some(answer) = self.get_now(key) {
                return Box::pin(std::future::ready(answer));
            }
            return Box::pin(async move { self.stack_for(Operation::Get, key)?.get(key).await });
        }
        Box::pin(async move {
            match self.serve(Operation::Get, key, |route| route.get_now(key)) {
                Ok(answer) => answer,
                Err(stack) => stack.get(key).await,
            }
        })
    }

    /// Answers when no access rule or audit log is configured (nothing to
    /// check or record) and the key routes to a stack that answers at once;
    /// otherwise `None`, and `get` does the whole call.
    #[inline(always)]
    fn get_now(&self, key: &Key) -> Option<Result<Bytes>> {
        if !self.open_access() {
            return None;
        }
        self.shared.state.load().router.route(key).get_now(key)
    }

    /// Like [`Session::get_now`](Storage::get_now): only with no access
    /// rule or audit log configured.
    fn put_now(&self, key: &Key, value: &Bytes, options: &PutOptions) -> Option<Result<ObjectMeta>> {
        if !self.open_access() {
            return None;
        }
        self.shared.state.load().router.route(key).put_now(key, value, options)
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        self.stack_for(Operation::Get, key)?.get_with_meta(key).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.stack_for(Operation::GetRange, key)?.get_range(key, range).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        match self.serve(Operation::Put, key, |route| route.put_now(key, &value, &options)) {
            Ok(answer) => answer,
            Err(stack) => stack.put(key, value, options).await,
        }
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.stack_for(Operation::Delete, key)?.delete(key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.stack_for(Operation::Stat, key)?.stat(key).await
    }

    /// Needs List on the prefix, or a Read grant somewhere inside it;
    /// entries the principal may not read are left out, names and sizes alike.
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let state = self.state();
        if self.open_access() {
            return state.router.list(options).await;
        }
        self.authorize_list(&state, &options.prefix)?;
        let mut page = state.router.list(options).await?;
        self.filter_listing(&state, &mut page);
        Ok(page)
    }

    /// A batch is atomic within one route; a batch whose keys route to
    /// different stacks is refused whole, nothing applied.
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let state = self.state();
        let Some(first) = ops.first() else { return Ok(()) };
        let checks: Vec<Check<'_>> = ops
            .iter()
            .flat_map(|op| {
                let inner = match op {
                    BatchOp::Put { .. } => Op::Write,
                    BatchOp::Delete { .. } => Op::Delete,
                };
                [Check::key(Op::Batch, op.key()), Check::key(inner, op.key())]
            })
            .collect();
        self.authorize(&state, Operation::Batch.audit_label(), &checks)?;
        let route = state.router.route(first.key());
        if let Some(other) = ops.iter().find(|op| state.router.route(op.key()).prefix != route.prefix) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the batch spans routes `{}` and `{}`, which cannot be changed atomically together; split the batch by route",
                    route.prefix,
                    state.router.route(other.key()).prefix
                ),
            )
            .with_key(other.key().as_str())
            .with_operation(Operation::Batch.as_str()));
        }
        route.stack.batch(ops).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.stack_for(Operation::Read, key)?.read(key, range).await
    }

    /// Checked when it starts, re-decided at each chunk (a reload that
    /// narrows the rules stops it there) and checked again, audited, when
    /// it publishes: the value is published only if the principal may
    /// write the key at that moment.
    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        let writer = self.stack_for(Operation::Write, key)?.write(key, options).await?;
        if self.open_access() {
            return Ok(writer);
        }
        Ok(Box::new(CheckedWriter { inner: writer, session: self.clone(), key: key.clone() }))
    }

    /// Atomic when both keys route to one stack that can rename them
    /// (a sharded stack can when both keys have the same owners, and says
    /// `Unsupported` otherwise); else a streamed copy followed by a delete
    /// of the source (a crash between the two leaves both keys, never
    /// neither).
    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let state = self.state();
        let checks = [Check::key(Op::Read, from), Check::key(Op::Delete, from), Check::key(Op::Write, to)];
        self.authorize(&state, Operation::Rename.audit_label(), &checks)?;
        let (src, dst) = (state.router.route(from), state.router.route(to));
        if src.prefix == dst.prefix && src.stack.capabilities().rename {
            match src.stack.rename(from, to).await {
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                done => return done,
            }
        }
        copy_value(&*src.stack, from, &*dst.stack, to, false)
            .await
            .map_err(|e| e.with_operation(Operation::Rename.as_str()))?;
        src.stack.delete(from).await
    }

    async fn set_metadata(
        &self,
        key: &Key,
        changes: &MetadataChanges,
        condition: &Condition,
    ) -> Result<ObjectMeta> {
        self.stack_for(Operation::SetMetadata, key)?.set_metadata(key, changes, condition).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        self.stack_for(Operation::Patch, key)?.patch(key, patch, condition).await
    }

    /// Checked and audited as a read of the whole value, when the file is
    /// handed out (what is read from it afterwards is not seen here).
    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        self.stack_for(Operation::Read, key)?.open_file(key).await
    }

    async fn sync(&self) -> Result<()> {
        self.state().sync().await
    }
}

/// A streamed write that stays within the writer's rights until it publishes.
struct CheckedWriter {
    inner: Box<dyn ValueWriter>,
    session: Session,
    key: Key,
}

#[async_trait]
impl ValueWriter for CheckedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if !self.session.allows(Op::Write, self.key.as_str()) {
            // Recorded, and the error to return.
            self.session.check(Op::Write, self.key.as_str())?;
        }
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        if let Err(e) = self.session.check(Op::Write, self.key.as_str()) {
            if let Err(abort) = self.inner.abort().await {
                tracing::debug!(error = %abort, "abandoning a refused write failed");
            }
            return Err(e);
        }
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
