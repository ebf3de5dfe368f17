//! `Session`: the manager seen by one principal, as a [`Storage`].

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::state::ManagerState;
use super::Shared;
use crate::access::Principal;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{
    copy_value, BatchOp, ByteStream, Capabilities, ListOptions, ListPage, ObjectMeta, PutOptions, Storage,
    ValueWriter,
};

/// Every operation of the manager, performed as one principal.
///
/// A `Session` is cheap to clone and safe to share between tasks. It is a
/// [`Storage`], so anything written against the trait works on a manager.
#[derive(Debug, Clone)]
pub struct Session {
    shared: Arc<Shared>,
    principal: Arc<Principal>,
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>, principal: Principal) -> Self {
        Session { shared, principal: Arc::new(principal) }
    }

    /// Who this session acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn state(&self) -> Arc<ManagerState> {
        self.shared.state.read().clone()
    }

    fn stack(&self, key: &str) -> Arc<dyn Storage> {
        self.shared.state.read().router.route(key).stack.clone()
    }
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
        let mut caps = Capabilities {
            atomic_batch: true,
            range_read: true,
            rename: true,
            persistent: true,
            conditional_put: true,
            streaming: true,
        };
        for route in state.router.routes() {
            let c = route.stack.capabilities();
            caps.atomic_batch &= c.atomic_batch;
            caps.range_read &= c.range_read;
            caps.persistent &= c.persistent;
            caps.conditional_put &= c.conditional_put;
            caps.streaming &= c.streaming;
        }
        caps
    }

    fn is_healthy(&self) -> bool {
        self.state().router.routes().all(|r| r.stack.is_healthy())
    }

    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.stack(key).get(key).await
    }

    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.stack(key).get_range(key, range).await
    }

    async fn put(&self, key: &Key, value: Bytes, options: PutOptions) -> Result<ObjectMeta> {
        self.stack(key).put(key, value, options).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.stack(key).delete(key).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.stack(key).stat(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        self.state().router.list(options).await
    }

    /// A batch is atomic within one route; a batch whose keys route to
    /// different stacks is refused whole, nothing applied.
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        let state = self.state();
        let Some(first) = ops.first() else { return Ok(()) };
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
            .with_operation("batch"));
        }
        route.stack.batch(ops).await
    }

    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.stack(key).read(key, range).await
    }

    async fn write(&self, key: &Key, options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.stack(key).write(key, options).await
    }

    /// Atomic when both keys route to one stack that can rename; otherwise
    /// a streamed copy followed by a delete of the source (a crash between
    /// the two leaves both keys, never neither).
    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let state = self.state();
        let (src, dst) = (state.router.route(from), state.router.route(to));
        if src.prefix == dst.prefix && src.stack.capabilities().rename {
            return src.stack.rename(from, to).await;
        }
        copy_value(&*src.stack, from, &*dst.stack, to, false)
            .await
            .map_err(|e| e.with_operation("rename"))?;
        src.stack.delete(from).await
    }

    async fn sync(&self) -> Result<()> {
        self.state().sync().await
    }
}
