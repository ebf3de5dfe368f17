//! `Session`: the manager seen by one principal, as a [`Storage`].

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::classes::{Placed, Target};
use super::router::Route;
use super::security::{Check, Security};
use super::state::ManagerState;
use super::Shared;
use crate::access::{Principal, StorageOperationType as Op};
use crate::classes::is_reserved;
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

    /// The manager's own session, for its internal listings (counting
    /// quotas); never handed out, never checked.
    pub(super) fn internal(shared: Arc<Shared>) -> Self {
        Session { shared, principal: Arc::new(Principal::new("tierfs")) }
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

    /// Whether this principal's profile (`[principals."..."]`) gives the
    /// keys it creates a default class.
    #[inline]
    fn has_profile(&self) -> bool {
        let state = self.shared.state.load();
        !state.config.principals.is_empty()
            && state.config.profile(&self.principal).is_some_and(|p| p.default_class.is_some())
    }

    /// Whether no access rule or audit log is configured: nothing to check or record.
    #[inline]
    pub(crate) fn open_access(&self) -> bool {
        self.shared.open_access.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Checks `op` on `key`, records it, and returns where to perform it
    /// (see [`Session::place`]).
    async fn target(&self, op: Operation, key: &Key) -> Result<Target> {
        let state = self.state();
        self.authorize_key(&state, op, key)?;
        self.place(&state, key, changes(op)).await
    }

    /// Checks `op` on `key` and records it.
    pub(crate) fn authorize_key(&self, state: &ManagerState, op: Operation, key: &Key) -> Result<()> {
        if self.open_access() {
            return Ok(());
        }
        self.authorize(state, op.audit_label(), &[Check::key(access_of(op), key)])
    }

    /// Whether a quota (`[[quotas]]`) counts `key`: its changes are then
    /// checked against it. A front end that defers writes (the mount's
    /// group commit) writes such keys at once instead, so the writer hears
    /// of a passed quota.
    #[inline]
    pub fn counted(&self, key: &Key) -> bool {
        let quotas = self.shared.quotas.load();
        !quotas.is_empty() && quotas.covers(key.as_str())
    }

    /// Whether `bytes` more under `key` (negative: fewer), and a new key
    /// when `new_key`, would fit every quota counting it, without reserving
    /// anything: a writer's early warning (the mount refuses a `write` that
    /// grows a file past its quota with `EDQUOT`). The change itself is
    /// checked again when it is made.
    ///
    /// ```
    /// use tierfs_core::{Config, ErrorKind, Key, Storage, StorageManager};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = Config::parse(
    ///     "[backends.m]\ntype = \"memory\"\n[[quotas]]\nprefix = \"home/\"\nmax_bytes = 10\n",
    ///     None,
    /// )?;
    /// let manager = StorageManager::open(config).await?;
    /// let store = manager.session("alice");
    /// let key = Key::new("home/notes.txt")?;
    /// store.put(&key, "0123456789".into(), Default::default()).await?;
    /// assert_eq!(store.check_quota(&key, 1, false).unwrap_err().kind(), ErrorKind::QuotaExceeded);
    /// assert!(store.check_quota(&key, -5, false).is_ok());
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn check_quota(&self, key: &Key, bytes: i64, new_key: bool) -> Result<()> {
        if !self.counted(key) {
            return Ok(());
        }
        self.shared.quotas.load().check(&[(key.as_str(), bytes, i64::from(new_key))])
    }

    /// A read of `key` with `f`, checked once (see [`Session::read_at`]).
    async fn read_key<T, F, Fut>(&self, op: Operation, key: &Key, f: F) -> Result<T>
    where
        F: Fn(Arc<dyn Storage>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let target = self.target(op, key).await?;
        self.read_at(key, target, f).await
    }

    /// A read of `key` with `f` at `target`; a read that found nothing
    /// before the index had entries asks again where the key is (a class
    /// given meanwhile may have moved it), and one that overlapped a move
    /// is done again under the key's lock.
    async fn read_at<T, F, Fut>(&self, key: &Key, target: Target, f: F) -> Result<T>
    where
        F: Fn(Arc<dyn Storage>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let index = &self.shared.classes;
        match f(target.stack.clone()).await {
            Err(e) if e.kind() == ErrorKind::NotFound && target.unindexed && index.active() => {
                let target = self.place(&self.state(), key, false).await?;
                f(target.stack.clone()).await
            }
            _ if target.overlapped(index, key) => {
                let target = self.place_locked(&self.state(), key).await?;
                f(target.stack.clone()).await
            }
            done => done,
        }
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

    /// [`Storage::get_now`] of the stack `key` is at, when the answer is
    /// at hand without waiting (no lock contended, the key not moving).
    fn get_placed_now(&self, key: &Key) -> Option<Result<Bytes>> {
        let state = self.shared.state.load();
        match self.place_now(&state, key)? {
            Ok(placed) => self.answer_now(key, &placed, placed.route.get_now(key)?),
            Err(e) => Some(Err(e)),
        }
    }

    /// `answer`, read at `placed` without waiting, if it stands: not a
    /// miss from before the index had entries, and no move overlapped it.
    #[inline]
    fn answer_now<T>(&self, key: &Key, placed: &Placed<'_>, answer: Result<T>) -> Option<Result<T>> {
        let index = &self.shared.classes;
        match answer {
            Err(e) if e.kind() == ErrorKind::NotFound && placed.unindexed && index.active() => None,
            _ if placed.overlapped(index, key) => None,
            answer => Some(answer),
        }
    }
}

/// Whether `op` changes data (it holds the key's shared lock, which a
/// class move waits for).
fn changes(op: Operation) -> bool {
    !matches!(op, Operation::Get | Operation::GetRange | Operation::Stat | Operation::Read | Operation::List)
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
            // Placed once: asked at once if the stack can answer so, else
            // read there when polled.
            let state = self.shared.state.load();
            let target = match self.place_now(&state, key) {
                Some(Ok(placed)) => match placed.route.get_now(key) {
                    Some(answer) => match self.answer_now(key, &placed, answer) {
                        Some(answer) => return Box::pin(std::future::ready(answer)),
                        None => None,
                    },
                    None => Some(placed.target()),
                },
                Some(Err(e)) => return Box::pin(std::future::ready(Err(e))),
                None => None,
            };
            let read = move |s: Arc<dyn Storage>| async move { s.get(key).await };
            return match target {
                Some(target) => Box::pin(self.read_at(key, target, read)),
                None => Box::pin(self.read_key(Operation::Get, key, read)),
            };
        }
        Box::pin(async move {
            if self.shared.classes.active() {
                return self.read_key(Operation::Get, key, |s| async move { s.get(key).await }).await;
            }
            match self.serve(Operation::Get, key, |route| route.get_now(key)) {
                Ok(Err(e)) if e.kind() == ErrorKind::NotFound && self.shared.classes.active() => {
                    self.place(&self.state(), key, false).await?.stack.get(key).await
                }
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
        self.get_placed_now(key)
    }

    /// Like [`Session::get_now`](Storage::get_now): only with no access
    /// rule or audit log configured.
    fn put_now(&self, key: &Key, value: &Bytes, options: &PutOptions) -> Option<Result<ObjectMeta>> {
        if !self.open_access()
            || options.storage_class.is_some()
            || is_reserved(key.as_str())
            || self.has_profile()
            || !self.shared.quotas.load().is_empty()
        {
            return None;
        }
        let index = &self.shared.classes;
        let _shared = index.locks.try_read(key.as_str())?;
        if index.active() {
            return None;
        }
        self.shared.state.load().router.route(key).put_now(key, value, options)
    }

    async fn get_with_meta(&self, key: &Key) -> Result<(ObjectMeta, Bytes)> {
        self.read_key(Operation::Get, key, |s| async move { s.get_with_meta(key).await }).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.read_key(Operation::GetRange, key, |s| {
            let range = range.clone();
            async move { s.get_range(key, range).await }
        })
        .await
    }

    /// A `storage_class` in `options` is given to the key first (see
    /// [`Session::set_storage_class`]); the value then lands there.
    async fn put(&self, key: &Key, value: Bytes, mut options: PutOptions) -> Result<ObjectMeta> {
        if options.storage_class.is_none() && self.has_profile() {
            options.storage_class = self.default_class(key).await?;
        }
        if let Some(class) = options.storage_class.take() {
            self.set_storage_class(key, Some(&class)).await?;
        } else if !self.shared.classes.active() {
            if let Some(answer) = self.put_now(key, &value, &options) {
                return answer;
            }
        }
        if self.counted(key) {
            return self.put_counted(key, value, options).await;
        }
        let target = self.target(Operation::Put, key).await?;
        target.stack.put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        if self.counted(key) {
            return self.delete_counted(key).await;
        }
        self.target(Operation::Delete, key).await?.stack.delete(key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.read_key(Operation::Stat, key, |s| async move { s.stat(key).await }).await
    }

    /// Needs List on the prefix, or a Read grant somewhere inside it;
    /// entries the principal may not read are left out, names and sizes alike.
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let state = self.state();
        let classes = self.shared.classes.active();
        if self.open_access() {
            return match classes {
                false => state.router.list(options).await,
                true => self.list_places(&state, options).await,
            };
        }
        self.authorize_list(&state, &options.prefix)?;
        let mut page = match classes {
            false => state.router.list(options).await?,
            true => self.list_places(&state, options).await?,
        };
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
        if ops.iter().any(|op| self.counted(op.key())) {
            return self.batch_counted(&state, ops).await;
        }
        let keys: Vec<&str> = ops.iter().map(|op| op.key().as_str()).collect();
        let index = &self.shared.classes;
        let _shared = index.locks.read_many(&keys).await;
        if index.active() {
            return self.batch_placed(&state, ops).await;
        }
        if let Some(op) = ops.iter().find(|op| is_reserved(op.key().as_str())) {
            return Err(self.place(&state, op.key(), true).await.err().expect("a reserved key is refused"));
        }
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
        self.read_key(Operation::Read, key, |s| {
            let range = range.clone();
            async move { s.read(key, range).await }
        })
        .await
    }

    /// Checked when it starts, re-decided at each chunk (a reload that
    /// narrows the rules stops it there) and checked again, audited, when
    /// it publishes: the value is published only if the principal may
    /// write the key at that moment.
    /// A `storage_class` in `options` is given to the key first, as for `put`.
    async fn write(&self, key: &Key, mut options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        if options.storage_class.is_none() && self.has_profile() {
            options.storage_class = self.default_class(key).await?;
        }
        if let Some(class) = options.storage_class.take() {
            self.set_storage_class(key, Some(&class)).await?;
        }
        let writer = if self.counted(key) {
            self.write_counted(key, options).await?
        } else {
            let target = self.target(Operation::Write, key).await?;
            let writer = target.stack.write(key, options).await?;
            match target.guard {
                Some(guard) => Box::new(GuardedWriter { inner: writer, _shared: guard }),
                None => writer,
            }
        };
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
        if self.counted(from) || self.counted(to) {
            return self.rename_counted(&state, from, to).await;
        }
        if self.shared.classes.active() || is_reserved(from.as_str()) || is_reserved(to.as_str()) {
            return self.rename_placed(&state, from, to).await;
        }
        let index = &self.shared.classes;
        let shared = index.locks.read_many(&[from.as_str(), to.as_str()]).await;
        if index.active() {
            drop(shared);
            return self.rename_placed(&state, from, to).await;
        }
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
        self.target(Operation::SetMetadata, key).await?.stack.set_metadata(key, changes, condition).await
    }

    async fn patch(&self, key: &Key, patch: &Patch, condition: &Condition) -> Result<ObjectMeta> {
        if self.counted(key) {
            return self.patch_counted(key, patch, condition).await;
        }
        self.target(Operation::Patch, key).await?.stack.patch(key, patch, condition).await
    }

    /// Checked and audited as a read of the whole value, when the file is
    /// handed out (what is read from it afterwards is not seen here).
    async fn open_file(&self, key: &Key) -> Result<Option<LocalFile>> {
        self.read_key(Operation::Read, key, |s| async move { s.open_file(key).await }).await
    }

    async fn sync(&self) -> Result<()> {
        self.state().sync().await
    }
}

/// A streamed write holding its key's shared lock until it publishes (a
/// class move of the key waits for it).
struct GuardedWriter {
    inner: Box<dyn ValueWriter>,
    _shared: tokio::sync::OwnedRwLockReadGuard<()>,
}

#[async_trait]
impl ValueWriter for GuardedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
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
