//! A small policy written the way a new one is: one folder, one
//! registration line. `read_only` serves reads from its one backend and
//! refuses every change with the reason it is configured with. The tests
//! check what the registry promises every policy: typed settings refused
//! with the field, the build step, hooks reached by the manager, and
//! background tasks that end with the configuration that started them.
//!
//! ```toml
//! [[routes]]
//! prefix = "archive/"
//! policy = { type = "custom", name = "read_only", backends = ["archive"], settings = { reason = "frozen" } }
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use tierfs_core::policies::{PolicyContext, PolicyHooks, PolicyPlugin};
use tierfs_core::{
    BatchOp, ByteStream, Capabilities, Config, Error, ErrorKind, Key, ListOptions, ListPage, ObjectMeta,
    PutOptions, Result, Storage, StorageManager, StorageRegistry, ValueWriter,
};

/// The policy type. Counts how often the manager retired one of its
/// stacks and how many of its background tasks are still running.
#[derive(Debug, Default)]
pub struct ReadOnly {
    retired: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOnlySettings {
    reason: String,
}

#[async_trait]
impl PolicyPlugin for ReadOnly {
    fn name(&self) -> &str {
        "read_only"
    }

    async fn build(&self, mut context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let settings: ReadOnlySettings = context.parse()?;
        let [backend] = context.backends.as_slice() else {
            return Err(context.policy_error("backends", "read_only serves exactly one backend"));
        };
        let stack = Arc::new(Frozen { inner: backend.clone(), reason: settings.reason });
        let running = Running::start(&self.running);
        context.spawn(tokio::spawn(async move {
            let _running = running;
            std::future::pending::<()>().await
        }));
        context.hooks(Arc::new(Retired(self.retired.clone())));
        Ok(stack)
    }
}

/// Counts a task as running until it is dropped (ended or aborted).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: &Arc<AtomicUsize>) -> Running {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Retired(Arc<AtomicUsize>);

#[async_trait]
impl PolicyHooks for Retired {
    async fn retire(&self) -> Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Debug)]
struct Frozen {
    inner: Arc<dyn Storage>,
    reason: String,
}

impl Frozen {
    fn refuse<T>(&self, key: &Key) -> Result<T> {
        Err(Error::new(ErrorKind::PermissionDenied, format!("`{key}` is read-only: {}", self.reason)))
    }
}

#[async_trait]
impl Storage for Frozen {
    fn name(&self) -> &str {
        "read_only"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { atomic_batch: false, ..self.inner.capabilities() }
    }
    async fn get(&self, key: &Key) -> Result<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.inner.stat(key).await
    }
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }
    async fn read(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.inner.read(key, range).await
    }
    async fn put(&self, key: &Key, _value: Bytes, _options: PutOptions) -> Result<ObjectMeta> {
        self.refuse(key)
    }
    async fn delete(&self, key: &Key) -> Result<()> {
        self.refuse(key)
    }
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<()> {
        match ops.first() {
            Some(op) => self.refuse(op.key()),
            None => Ok(()),
        }
    }
    async fn write(&self, key: &Key, _options: PutOptions) -> Result<Box<dyn ValueWriter>> {
        self.refuse(key)
    }
}

const CONFIG: &str = r#"
[backends.main]
type = "memory"
[backends.archive]
type = "memory"
[[routes]]
prefix = "archive/"
policy = { type = "custom", name = "read_only", backends = ["archive"], settings = { reason = "frozen for the audit" } }
"#;

async fn open(config: &str) -> (StorageManager, Arc<ReadOnly>) {
    let policy = Arc::new(ReadOnly::default());
    let registry = Arc::new(StorageRegistry::with_builtins());
    registry.register_policy(policy.clone()).unwrap();
    let manager =
        StorageManager::with_registry(Config::parse(config, None).unwrap(), registry).await.unwrap();
    (manager, policy)
}

#[tokio::test]
async fn a_new_policy_serves_reads_and_refuses_changes_with_its_reason() {
    let (manager, _) = open(CONFIG).await;
    let key = Key::new("archive/2025.csv").unwrap();
    manager.backend("archive").unwrap().put(&key, Bytes::from("a,b\n"), Default::default()).await.unwrap();
    let store = manager.session("tester");
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from("a,b\n"));
    let e = store.put(&key, Bytes::from("x"), Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("`archive/2025.csv` is read-only: frozen for the audit"), "{e}");
    assert_eq!(store.delete(&key).await.unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Keys outside the route are untouched by it.
    let other = Key::new("notes.txt").unwrap();
    store.put(&other, Bytes::from("n"), Default::default()).await.unwrap();
    let route = manager.route_of("archive/2025.csv");
    assert_eq!((route.policy.as_str(), route.backends), ("custom", vec!["archive".to_owned()]));
}

#[tokio::test]
async fn its_settings_are_typed_and_refused_with_the_field() {
    let policy = Arc::new(ReadOnly::default());
    let registry = Arc::new(StorageRegistry::with_builtins());
    registry.register_policy(policy).unwrap();
    for (from, to, needle) in [
        ("reason = ", "why = ", "`routes[0].policy.settings`: unknown field `why`, expected `reason`"),
        ("settings = { reason = \"frozen for the audit\" }", "settings = {}", "missing field `reason`"),
        (
            "backends = [\"archive\"]",
            "backends = [\"archive\", \"main\"]",
            "`routes[0].policy.backends`: read_only serves exactly one backend",
        ),
    ] {
        let config = Config::parse(&CONFIG.replace(from, to), None).unwrap();
        let e = StorageManager::with_registry(config, registry.clone()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains(needle), "{to}: {e}");
    }
    // A backend that is not configured is refused when the file is read.
    let e = Config::parse(&CONFIG.replace("[\"archive\"]", "[\"tape\"]"), None).unwrap_err();
    assert!(e.to_string().contains("`routes[0].policy.backends[0]`: no backend named `tape`"), "{e}");
}

#[tokio::test]
async fn a_reload_retires_its_hooks_and_ends_its_tasks() {
    let (manager, policy) = open(CONFIG).await;
    assert_eq!(policy.running.load(Ordering::SeqCst), 1);
    assert_eq!(policy.retired.load(Ordering::SeqCst), 0);

    manager.reconfigure(Config::parse(CONFIG, None).unwrap()).await.unwrap();
    // The old stack was retired once; its task ended when its state went.
    assert_eq!(policy.retired.load(Ordering::SeqCst), 1);
    wait_for(|| policy.running.load(Ordering::SeqCst) == 1).await;

    manager.shutdown().await.unwrap();
    assert_eq!(policy.retired.load(Ordering::SeqCst), 2);
    drop(manager);
    wait_for(|| policy.running.load(Ordering::SeqCst) == 0).await;
}

#[tokio::test]
async fn a_build_that_fails_half_way_leaves_no_task_running() {
    let policy = Arc::new(ReadOnly::default());
    let registry = Arc::new(StorageRegistry::with_builtins());
    registry.register_policy(policy.clone()).unwrap();
    // The first route builds and starts its task; the second fails.
    let config = format!(
        "{CONFIG}[[routes]]\nprefix = \"b/\"\npolicy = {{ type = \"custom\", name = \"read_only\", \
         backends = [\"main\"], settings = {{ colour = 1 }} }}\n"
    );
    let e =
        StorageManager::with_registry(Config::parse(&config, None).unwrap(), registry).await.err().unwrap();
    assert!(e.to_string().contains("`routes[1].policy.settings`: unknown field `colour`"), "{e}");
    wait_for(|| policy.running.load(Ordering::SeqCst) == 0).await;
}

/// Yields to the runtime until `done` holds: an aborted task is dropped
/// on the runtime's next turn, not at once.
async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    assert!(done(), "condition not reached");
}
