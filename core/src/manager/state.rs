//! One applied configuration: its backends (each in a
//! [`ManagedStorage`]: tracing, metrics, health), its policy stacks, its
//! router and its background tasks.
//! A reload builds a new state and swaps it in whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::router::{Route, Router};
use crate::config::{parse_table, BackendConfig, Config, PolicyConfig};
use crate::error::Result;
use crate::layers::ManagedStorage;
use crate::metrics::StorageMetrics;
use crate::policies::cache::{CacheConfig, CacheStorage};
use crate::policies::custom::PolicyContext;
use crate::policies::redundant::RedundantStorage;
use crate::policies::tiered::{MigrationSettings, TieredStorage};
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
    /// Caches, shut down (flushed, write-back off) when this state retires.
    caches: Vec<Arc<CacheStorage>>,
    /// Redundant sets, for scrubs on demand.
    pub redundant: Vec<Arc<RedundantStorage>>,
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

        let mut tasks = Vec::new();
        let mut caches = Vec::new();
        let mut redundant = Vec::new();
        let mut built = Built { tasks: &mut tasks, caches: &mut caches, redundant: &mut redundant };
        let default_policy = config.default_policy();
        let default_stack =
            build_stack(&config, "policy", &default_policy, &backends, registry, metrics, &mut built).await?;
        let default = Route {
            direct: direct(&default_policy, &config, &backends),
            cache: built.last_cache(&default_stack),
            prefix: String::new(),
            backends: default_policy.backends(&config),
            policy: default_policy,
            stack: default_stack,
        };
        let mut routes = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            let policy = route.policy();
            let field = format!("routes[{i}].policy");
            let stack =
                build_stack(&config, &field, &policy, &backends, registry, metrics, &mut built).await?;
            routes.push(Route {
                direct: direct(&policy, &config, &backends),
                cache: built.last_cache(&stack),
                prefix: route.prefix.clone(),
                backends: policy.backends(&config),
                policy,
                stack,
            });
        }
        tasks.push(spawn_prober(backends.values().map(|b| b.managed.clone()).collect()));
        Ok(ManagerState { config, backends, router: Router::new(routes, default), caches, redundant, tasks })
    }

    /// Ends this state's write-back: every cache flushes and passes later
    /// writes straight to its primary, so operations still running on a
    /// replaced configuration lose nothing.
    pub async fn retire(&self) -> Result<()> {
        let mut first_error = None;
        for cache in &self.caches {
            if let Err(e) = cache.shutdown().await {
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
        for route in self.router.routes() {
            if let Err(e) = route.stack.sync().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The managed backend an `always_local` policy is.
fn direct(
    policy: &PolicyConfig,
    config: &Config,
    backends: &BTreeMap<String, Backend>,
) -> Option<Arc<ManagedStorage>> {
    match policy {
        PolicyConfig::AlwaysLocal { .. } => {
            policy.backends(config).first().and_then(|name| backends.get(name)).map(|b| b.managed.clone())
        }
        _ => None,
    }
}

/// What building stacks leaves for the state to own.
struct Built<'a> {
    tasks: &'a mut Vec<JoinHandle<()>>,
    caches: &'a mut Vec<Arc<CacheStorage>>,
    redundant: &'a mut Vec<Arc<RedundantStorage>>,
}

impl Built<'_> {
    /// The cache just built, if `stack` is it.
    fn last_cache(&self, stack: &Arc<dyn Storage>) -> Option<Arc<CacheStorage>> {
        self.caches.last().filter(|c| std::ptr::addr_eq(Arc::as_ptr(c), Arc::as_ptr(stack))).cloned()
    }
}

async fn build_stack(
    config: &Config,
    field: &str,
    policy: &PolicyConfig,
    backends: &BTreeMap<String, Backend>,
    registry: &StorageRegistry,
    metrics: &Arc<StorageMetrics>,
    built: &mut Built<'_>,
) -> Result<Arc<dyn Storage>> {
    let members: Vec<Arc<dyn Storage>> = policy
        .backends(config)
        .iter()
        .map(|name| {
            backends
                .get(name)
                .map(|b| b.managed.clone() as Arc<dyn Storage>)
                .ok_or_else(|| config.error(field, &format!("no backend named `{name}`")))
        })
        .collect::<Result<_>>()?;
    match policy {
        PolicyConfig::AlwaysLocal { .. } => Ok(members[0].clone()),
        PolicyConfig::Tiered { migration, .. } => {
            let migration_field = format!("{field}.migration");
            let settings: MigrationSettings = parse_table(config, &migration_field, migration)?;
            settings.validate(config, &migration_field)?;
            let tiered = TieredStorage::new(
                format!("tiered({}, {})", members[0].name(), members[1].name()),
                members[0].clone(),
                members[1].clone(),
                settings,
                metrics.clone(),
            );
            built.tasks.push(tiered.spawn_migrator());
            Ok(tiered)
        }
        PolicyConfig::Custom { name, settings, .. } => {
            let plugin =
                registry.policy(name).map_err(|e| config.error(&format!("{field}.name"), e.message()))?;
            let context = PolicyContext {
                config,
                field: field.to_owned(),
                backends: members,
                settings,
                metrics: metrics.clone(),
                tasks: built.tasks,
            };
            plugin.build(context).await
        }
        PolicyConfig::PreferCache { cache, .. } => {
            let cache_field = format!("{field}.cache");
            let settings: CacheConfig = parse_table(config, &cache_field, cache)?;
            let options = settings.to_options().map_err(|e| config.error(&cache_field, e.message()))?;
            let tier = settings
                .build_tier(&options, metrics.clone())
                .map_err(|e| config.error(&cache_field, e.message()))?;
            let storage = CacheStorage::new(members[0].clone(), tier, options, metrics.clone());
            built.tasks.push(storage.spawn_flusher());
            built.caches.push(storage.clone());
            Ok(storage)
        }
        PolicyConfig::Redundant { write_quorum, scrub_interval_secs, .. } => {
            let name = format!("redundant({})", policy.backends(config).join(", "));
            let quorum = write_quorum.unwrap_or(members.len());
            let storage = match policy.hints_path(config) {
                Some(path) => RedundantStorage::with_hint_log(name, members, quorum, metrics.clone(), &path),
                None => {
                    tracing::warn!(
                        policy = field,
                        "the redundant set has no `local` member and no `hints_path`: its hints live in memory, \
                         so a key deleted while a member is down may come back after a crash"
                    );
                    RedundantStorage::new(name, members, quorum, metrics.clone())
                }
            }
            .map_err(|e| config.error(field, e.message()))?;
            let interval = scrub_interval_secs.unwrap_or(60);
            if interval > 0 {
                built.tasks.push(storage.spawn_scrubber(Duration::from_secs(interval)));
            }
            built.redundant.push(storage.clone());
            Ok(storage)
        }
    }
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
