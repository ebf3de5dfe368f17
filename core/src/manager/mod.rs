//! `StorageManager`: the main entry point. It owns the configured backends,
//! routes each operation by prefix to a policy stack, and keeps metrics.
//!
//! ```
//! use tierfs_core::{Config, Key, StorageManager, Storage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let config = Config::parse(
//!     r#"
//!     [backends.main]
//!     type = "memory"
//!     [backends.scratch]
//!     type = "memory"
//!
//!     [policy]
//!     type = "always_local"
//!     backend = "main"
//!
//!     [[routes]]
//!     prefix = "tmp/"
//!     backend = "scratch"
//!     "#,
//!     None,
//! )?;
//! let manager = StorageManager::open(config).await?;
//! let store = manager.session("alice");
//! store.put(&Key::new("tmp/x")?, "scratch data".into(), Default::default()).await?;
//! assert_eq!(manager.route_of("tmp/x").backends, ["scratch"]);
//! assert_eq!(manager.metrics().backends["scratch"]["put"].count, 1);
//! manager.shutdown().await?;
//! # Ok::<_, tierfs_core::Error>(())
//! # }).unwrap();
//! ```

mod admin;
mod classes;
mod explain;
mod gate;
mod quotas;
mod router;
mod security;
mod session;
mod state;

use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use parking_lot::RwLock;

pub use classes::ClassInfo;
pub use explain::{CacheVerdict, Explanation};
pub use router::Route;
pub use session::Session;

use crate::access::AccessEvaluator;
use crate::access::Principal;
use crate::audit::{AuditConfig, AuditLog};
use crate::classes::ClassIndex;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::{MetricsSnapshot, StorageMetrics};
use crate::quotas::Quotas;
use crate::registry::StorageRegistry;
use crate::storage::Storage;
use security::Security;
use state::ManagerState;

#[derive(Debug)]
pub(crate) struct Shared {
    registry: Arc<StorageRegistry>,
    metrics: Arc<StorageMetrics>,
    /// Swapped whole on reconfigure; read lock-free on every call.
    state: ArcSwap<ManagerState>,
    security: RwLock<Arc<Security>>,
    /// Set while no rule restricts anyone and nothing is audited: checks are skipped.
    open_access: AtomicBool,
    /// Serializes reconfigurations; operations never take it.
    reconfigure: tokio::sync::Mutex<()>,
    /// The storage classes given to keys and prefixes.
    classes: Arc<ClassIndex>,
    /// Moves of keys to their new class, running in the background.
    moves: parking_lot::Mutex<tokio::task::JoinSet<()>>,
    /// The quotas in force and what each counts.
    quotas: ArcSwap<Quotas>,
    /// The roles each user id was seen with (sessions made), for
    /// delegation checks: rules alone cannot tell who holds a role.
    known: RwLock<rustc_hash::FxHashMap<String, Vec<String>>>,
}

/// Most user ids remembered with their roles.
const KNOWN_MAX: usize = 100_000;

impl Shared {
    /// Remembers the roles `principal` holds.
    pub(crate) fn saw(&self, principal: &Principal) {
        let seen = self
            .known
            .read()
            .get(principal.id())
            .is_some_and(|roles| principal.roles().iter().all(|r| roles.contains(r)));
        if seen {
            return;
        }
        let mut known = self.known.write();
        if known.len() >= KNOWN_MAX && !known.contains_key(principal.id()) {
            return;
        }
        let roles = known.entry(principal.id().to_owned()).or_default();
        for role in principal.roles() {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
    }

    /// Every user known to hold `role`, with all its roles.
    pub(crate) fn members(&self, role: &str) -> Vec<Principal> {
        let known = self.known.read();
        known
            .iter()
            .filter(|(_, roles)| roles.iter().any(|r| r == role))
            .map(|(id, roles)| roles.iter().fold(Principal::new(id.clone()), |p, r| p.with_role(r.clone())))
            .collect()
    }

    /// User `id` with every role it was seen with.
    pub(crate) fn known(&self, id: &str) -> Option<Principal> {
        let known = self.known.read();
        let roles = known.get(id)?;
        Some(roles.iter().fold(Principal::new(id), |p, r| p.with_role(r.clone())))
    }
}

/// Where a key goes: its route and policy (see [`StorageManager::route_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The matching route prefix; empty for the default route.
    pub prefix: String,
    /// The policy type (`always_local`, `prefer_cache`, ...).
    pub policy: String,
    /// The backends of that policy, in order.
    pub backends: Vec<String>,
    /// Whether a batch on this route is applied all or nothing (else the
    /// route refuses batches: commit changes one at a time).
    pub atomic_batch: bool,
}

/// The storage manager. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StorageManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StorageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageManager").field("backends", &self.backend_names()).finish_non_exhaustive()
    }
}

impl StorageManager {
    /// Opens the backends and policies of `config`, with the built-in
    /// backend types. Must run inside a tokio runtime (background tasks).
    pub async fn open(config: Config) -> Result<Self> {
        Self::with_registry(config, Arc::new(StorageRegistry::with_builtins())).await
    }

    /// The embedded default: one persistent local store in `root` or the
    /// user's data directory.
    pub async fn open_default(root: Option<&Path>) -> Result<Self> {
        Self::open(Config::embedded_default(root)?).await
    }

    /// Opens `config` with backend types and policies from `registry`.
    pub async fn with_registry(config: Config, registry: Arc<StorageRegistry>) -> Result<Self> {
        let metrics = StorageMetrics::new();
        let (security, _) = build_security(&config, None)?;
        let state = ManagerState::build(config, &registry, &metrics, None).await?;
        let classes = Arc::new(ClassIndex::load(&*state.router.default_route().stack).await?);
        let manager = StorageManager {
            shared: Arc::new(Shared {
                registry,
                metrics,
                state: ArcSwap::from_pointee(state),
                open_access: AtomicBool::new(security.is_open()),
                security: RwLock::new(Arc::new(security)),
                reconfigure: tokio::sync::Mutex::new(()),
                known: RwLock::new(Default::default()),
                classes,
                moves: Default::default(),
                quotas: Default::default(),
            }),
        };
        manager.shared.resume_moves();
        let state = manager.shared.state.load_full();
        let quotas = manager.shared.count_quotas(&state, None).await?;
        manager.shared.quotas.store(Arc::new(quotas));
        Ok(manager)
    }

    /// The manager as seen by `principal`.
    pub fn session(&self, principal: impl Into<Principal>) -> Session {
        Session::new(self.shared.clone(), principal.into())
    }

    /// Whether no access rule restricts anyone and no audit log records
    /// anything: every principal may then do everything, and faces may
    /// skip asking who calls.
    pub fn access_is_open(&self) -> bool {
        self.shared.open_access.load(Ordering::Acquire)
    }

    /// The registry backends and policies come from.
    pub fn registry(&self) -> &Arc<StorageRegistry> {
        &self.shared.registry
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.shared.state.load().config.clone()
    }

    /// The metrics at this moment.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shared.metrics.snapshot();
        for (name, backend) in &self.shared.state.load().backends {
            if let Some(traffic) = backend.managed.traffic() {
                snapshot.traffic.insert(name.clone(), traffic);
            }
        }
        snapshot
    }

    /// The names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.shared.state.load().backends.keys().cloned().collect()
    }

    /// Backend `name` as policies see it (health and metrics layers on).
    pub fn backend(&self, name: &str) -> Result<Arc<dyn Storage>> {
        let state = self.shared.state.load();
        state.backends.get(name).map(|b| b.managed.clone() as Arc<dyn Storage>).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no backend named `{name}`; configured: {}",
                    state.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Whether backend `name` is believed reachable.
    pub fn backend_healthy(&self, name: &str) -> Result<bool> {
        Ok(self.backend(name)?.is_healthy())
    }

    /// The route, policy and backends serving `key`, without touching any backend.
    pub fn route_of(&self, key: &str) -> RouteInfo {
        let state = self.shared.state.load();
        let route = state.router.route(key);
        RouteInfo {
            prefix: route.prefix.clone(),
            policy: route.policy.kind().to_owned(),
            backends: route.backends.clone(),
            atomic_batch: route.stack.capabilities().atomic_batch,
        }
    }

    /// Applies a new configuration: it is validated and built completely
    /// first (backends whose settings did not change are kept open), then
    /// swapped in at once. Operations already running finish on the old
    /// configuration; later ones use the new. On error nothing changes.
    pub async fn reconfigure(&self, config: Config) -> Result<()> {
        self.shared.reconfigure(config).await
    }

    /// Whether every move started by a change of storage class has ended
    /// (see [`Session::set_storage_class`]).
    pub fn class_moves_done(&self) -> bool {
        self.shared.moves_done()
    }

    /// Runs one scrub of every redundant set now (catch-up of lagging
    /// copies and a full comparison), returning each set's report.
    pub async fn scrub(&self) -> Result<Vec<crate::policies::redundant::ScrubReport>> {
        let state = self.shared.state.load_full();
        let mut reports = Vec::new();
        for hooks in &state.hooks {
            if let Some(report) = hooks.scrub().await {
                reports.push(report?);
            }
        }
        Ok(reports)
    }

    /// Flushes write-back caches and makes acknowledged writes durable.
    pub async fn sync(&self) -> Result<()> {
        let state = self.shared.state.load_full();
        state.sync().await
    }

    /// Flushes everything and turns write-back off (later writes go
    /// straight to the backends); background tasks end when the last
    /// handle drops. Call it before dropping a manager with write-back
    /// caches: unflushed data does not survive the drop.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.stop_moves().await;
        let state = self.shared.state.load_full();
        state.retire().await
    }
}

impl Shared {
    /// See [`StorageManager::reconfigure`].
    pub(crate) async fn reconfigure(self: &Arc<Self>, config: Config) -> Result<()> {
        let _one_at_a_time = self.reconfigure.lock().await;
        let old = self.state.load_full();
        let old_security = self.security.read().clone();
        let (security, retune) = build_security(&config, Some(&old_security))?;
        let new = ManagerState::build(config, &self.registry, &self.metrics, Some(&old)).await?;
        if let (Some(log), Some(settings)) = (&security.audit, retune) {
            log.reconfigure(&settings)?;
        }
        let new = Arc::new(new);
        let previous = self.quotas.load_full();
        let quotas = self.count_quotas(&new, Some(&previous)).await?;
        self.state.store(new);
        self.quotas.store(Arc::new(quotas));
        self.set_security(security);
        // Write-back data of the old stacks reaches the backends.
        old.retire().await
    }

    /// Swaps the access rules and audit log in.
    pub(crate) fn set_security(&self, security: Security) {
        let open = security.is_open();
        *self.security.write() = Arc::new(security);
        self.open_access.store(open, Ordering::Release);
    }
}

/// The evaluator and audit log for `config`, keeping the open log of
/// `previous` when its settings did not change (one writer per file).
fn build_security(config: &Config, previous: Option<&Security>) -> Result<(Security, Option<AuditConfig>)> {
    let access = Arc::new(AccessEvaluator::new(&config.access_policy()?));
    let mut retune = None;
    let audit = match config.audit_config() {
        None => None,
        Some(audit_config) => match previous.and_then(|p| p.audit.clone()) {
            // The same files: one writer, so one chain; settings that
            // changed are applied when the reload is applied.
            Some(log) if log.is_same_log(&audit_config) => {
                if log.config() != audit_config {
                    retune = Some(audit_config);
                }
                Some(log)
            }
            _ => Some(Arc::new(
                AuditLog::open(&audit_config).map_err(|e| config.error("audit.path", e.message()))?,
            )),
        },
    };
    // With access rules, a log other users can read would show them every key name.
    if let (Some(log), Some(_)) = (&audit, &config.access) {
        log.check_private().map_err(|e| config.error("audit.path", e.message()))?;
    }
    Ok((Security { access, audit }, retune))
}
