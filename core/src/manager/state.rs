//! One applied configuration: its backends (each in a
//! [`ManagedStorage`]: tracing, metrics, health), its policy stacks (each
//! built by its type from the registry), its router, its policies' hooks
//! and its background tasks.
//! A reload builds a new state and swaps it in whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::router::{Route, Router};
use crate::classes::ClassSet;
use crate::config::{BackendConfig, Config, PolicyConfig};
use crate::error::Result;
use crate::layers::ManagedStorage;
use crate::metrics::StorageMetrics;
use crate::policies::{Owned, PolicyContext, PolicyHooks, PolicySettings};
use crate::registry::StorageRegistry;
use crate::storage::Storage;

/// How often unhealthy backends are checked for a due probe.
const PROBE_TICK: Duration = Duration::from_millis(100);

/// A configured backend with its layers.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub config: BackendConfig,
    /// What policies use: the bare backend traced, measured and guarded.
    pub managed: Arc<ManagedStorage>,
}

/// One applied configuration.
#[derive(Debug)]
pub(crate) struct ManagerState {
    pub config: Config,
    pub backends: BTreeMap<String, Backend>,
    pub router: Router,
    /// The storage classes and where each puts a key.
    pub classes: ClassSet,
    /// What the policies asked of the manager, in the order they were
    /// built (the default policy first): retired with this state, scrubbed
    /// on demand.
    pub hooks: Vec<Arc<dyn PolicyHooks>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ManagerState {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ManagerState {
    /// Builds the state for `config`, reusing backends of `previous` whose
    /// configuration did not change (a local store cannot be opened twice).
    pub async fn build(
        config: Config,
        registry: &StorageRegistry,
        metrics: &Arc<StorageMetrics>,
        previous: Option<&ManagerState>,
    ) -> Result<ManagerState> {
        config.validate()?;
        registry.load_libraries(&config)?;
        let health_options = config.health.options();
        let mut backends = BTreeMap::new();
        for (name, backend_config) in &config.backends {
            let reused = previous
                .and_then(|p| p.backends.get(name))
                .filter(|b| &b.config == backend_config)
                .map(|b| b.managed.inner().clone());
            let raw = match reused {
                Some(raw) => raw,
                None => registry.create_bare(&config, name).await?,
            };
            let managed = Arc::new(ManagedStorage::new(raw, health_options, metrics));
            backends.insert(name.clone(), Backend { config: backend_config.clone(), managed });
        }

        // Tasks of a build that fails half-way are aborted with `owned`.
        let mut owned = Owned::default();
        let default = build_route(
            &config,
            "policy",
            "",
            config.default_policy(),
            &backends,
            registry,
            metrics,
            &mut owned,
        )
        .await?;
        let mut routes = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            let field = format!("routes[{i}].policy");
            let policy = route.policy();
            routes.push(
                build_route(&config, &field, &route.prefix, policy, &backends, registry, metrics, &mut owned)
                    .await?,
            );
        }
        let bare: BTreeMap<String, Arc<dyn Storage>> =
            backends.iter().map(|(n, b)| (n.clone(), b.managed.clone() as Arc<dyn Storage>)).collect();
        let all: Vec<&Route> = std::iter::once(&default).chain(&routes).collect();
        let mut plans = Vec::new();
        for plan in ClassSet::plan(&config, &all, &bare) {
            let built = match &plan.build {
                Some((field, policy)) => Some(
                    build_route(&config, field, "", policy.clone(), &backends, registry, metrics, &mut owned)
                        .await?,
                ),
                None => None,
            };
            plans.push((plan, built));
        }
        let classes = ClassSet::assemble(&config, plans, &all, &bare)?;
        for (name, profile) in &config.principals {
            let named = profile.default_class.iter().map(|c| ("default_class", c));
            let allowed = profile.allowed_classes.iter().flatten().map(|c| ("allowed_classes", c));
            for (field, class) in named.chain(allowed) {
                if let Err(e) = classes.class(class) {
                    return Err(config.error(&format!("principals.\"{name}\".{field}"), e.message()));
                }
            }
        }
        owned.tasks.push(spawn_prober(backends.values().map(|b| b.managed.clone()).collect()));
        let hooks = std::mem::take(&mut owned.hooks);
        let tasks = std::mem::take(&mut owned.tasks);
        Ok(ManagerState { config, backends, router: Router::new(routes, default), classes, hooks, tasks })
    }

    /// Ends this state's write-back: every cache flushes and passes later
    /// writes straight to its primary, so operations still running on a
    /// replaced configuration lose nothing.
    pub async fn retire(&self) -> Result<()> {
        let mut first_error = None;
        for hooks in &self.hooks {
            if let Err(e) = hooks.retire().await {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.sync().await {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Flushes every stack (write-back caches) and backend.
    pub async fn sync(&self) -> Result<()> {
        let mut first_error = None;
        for route in self.router.routes().chain(self.classes.stacks()) {
            if let Err(e) = route.stack.sync().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Builds the route for `prefix` from `policy` (configured at `field`).
#[allow(clippy::too_many_arguments)]
async fn build_route(
    config: &Config,
    field: &str,
    prefix: &str,
    policy: PolicyConfig,
    backends: &BTreeMap<String, Backend>,
    registry: &StorageRegistry,
    metrics: &Arc<StorageMetrics>,
    owned: &mut Owned,
) -> Result<Route> {
    let plugin = registry
        .policy_type(policy.kind())
        .map_err(|e| config.error(&format!("{field}.type"), e.message()))?;
    let settings = PolicySettings { config, field, table: &policy.settings };
    let members = plugin.members(&settings)?;
    let mut stacks = Vec::with_capacity(members.len());
    for member in &members {
        let backend = backends
            .get(&member.backend)
            .ok_or_else(|| config.error(&member.field, &format!("no backend named `{}`", member.backend)))?;
        stacks.push(backend.managed.clone() as Arc<dyn Storage>);
    }
    let backend_names: Vec<String> = members.into_iter().map(|m| m.backend).collect();
    let first_hook = owned.hooks.len();
    let context = PolicyContext {
        config,
        field: field.to_owned(),
        backends: stacks,
        backend_names: backend_names.clone(),
        settings: &policy.settings,
        settings_field: field.to_owned(),
        metrics: metrics.clone(),
        registry,
        owned,
    };
    let stack = plugin.build(context).await?;
    // A stack that is one managed backend is called directly on the fast path.
    let direct = backends
        .values()
        .find(|b| std::ptr::addr_eq(Arc::as_ptr(&b.managed), Arc::as_ptr(&stack)))
        .map(|b| b.managed.clone());
    Ok(Route {
        prefix: prefix.to_owned(),
        policy,
        backends: backend_names,
        stack,
        hooks: owned.hooks[first_hook..].to_vec(),
        direct,
    })
}

/// Probes unhealthy backends. Holds only weak references, so a retired
/// state's backends close as soon as the state is dropped.
fn spawn_prober(backends: Vec<Arc<ManagedStorage>>) -> JoinHandle<()> {
    let backends: Vec<Weak<ManagedStorage>> = backends.iter().map(Arc::downgrade).collect();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_TICK).await;
            let mut alive = false;
            for backend in backends.iter().filter_map(Weak::upgrade) {
                alive = true;
                if !backend.is_healthy() {
                    backend.probe().await;
                }
            }
            if !alive {
                return;
            }
        }
    })
}
