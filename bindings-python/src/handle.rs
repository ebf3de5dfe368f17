//! Opening managers, and sharing them inside one process.
//!
//! A [`StoreCore`] is what `Store` and `AsyncStore` hold: an open manager and
//! the session of one principal. Managers opened from the same source (the
//! same configuration file, the same embedded-default root) are shared while
//! any handle on them is alive, so that a store opened by `tierfs.open()` and
//! the one behind `tierfs://` URLs are the same store, and a local backend's
//! single-opener lock never trips inside one process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use pyo3::prelude::*;
use tierfs_core::access::Principal;
use tierfs_core::{Config, Error, ErrorKind, Session, StorageManager};

use crate::errors::{to_py, IntoPy};
use crate::registry::registry;
use crate::runtime::{block_on_detached, runtime};

/// Where a manager's configuration came from: the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// A configuration file (canonical path).
    File(PathBuf),
    /// The embedded default in a root (`None`: the user's data directory).
    Default(Option<PathBuf>),
}

/// An open manager, shared by every store opened from the same source.
pub struct ManagerHandle {
    /// The manager.
    pub manager: StorageManager,
    source: Source,
}

impl Drop for ManagerHandle {
    fn drop(&mut self) {
        // The last handle is gone: flush write-back caches before the
        // backends close (`close()` does the same and reports errors; this
        // is the fallback for stores never closed), then forget the source.
        // Both happen without the GIL, as the cache lock is also taken by
        // `open_manager` while it waits for Python backends.
        let work = || {
            if let Ok(rt) = runtime() {
                let _ = block_on_detached(rt, self.manager.shutdown());
            }
            let mut cache = MANAGERS.lock();
            if cache.get(&self.source).is_some_and(|w| w.strong_count() == 0) {
                cache.remove(&self.source);
            }
        };
        if Python::try_attach(|py| py.detach(work)).is_none() {
            work();
        }
    }
}

static MANAGERS: Mutex<Option<HashMap<Source, Weak<ManagerHandle>>>> = Mutex::new(None);

trait CacheExt {
    fn get(&self, source: &Source) -> Option<&Weak<ManagerHandle>>;
    fn remove(&mut self, source: &Source);
}

impl CacheExt for parking_lot::MutexGuard<'_, Option<HashMap<Source, Weak<ManagerHandle>>>> {
    fn get(&self, source: &Source) -> Option<&Weak<ManagerHandle>> {
        self.as_ref().and_then(|m| m.get(source))
    }
    fn remove(&mut self, source: &Source) {
        if let Some(m) = self.as_mut() {
            m.remove(source);
        }
    }
}

/// Every manager alive now (for the exit hook).
pub fn live_managers() -> Vec<Arc<ManagerHandle>> {
    MANAGERS.lock().as_ref().map(|m| m.values().filter_map(Weak::upgrade).collect()).unwrap_or_default()
}

/// Opens (or shares) the manager for `config` or `root`.
pub fn open_manager(
    py: Python<'_>,
    config: Option<PathBuf>,
    root: Option<PathBuf>,
) -> PyResult<Arc<ManagerHandle>> {
    let rt = runtime()?;
    let registry = registry();
    py.detach(move || {
        let source = match (&config, &root) {
            (Some(_), Some(_)) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "give either `config` (a configuration file) or `root` (a directory for the \
                     embedded default store), not both",
                ))
            }
            (Some(path), None) => {
                let canonical = path.canonicalize().map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("cannot read the configuration file {}: {e}; check the path", path.display()),
                    )
                })?;
                Source::File(canonical)
            }
            (None, Some(root)) => {
                std::fs::create_dir_all(root).map_err(|e| {
                    Error::io(format!("cannot create the store directory {}", root.display()), e)
                })?;
                Source::Default(Some(root.canonicalize().unwrap_or_else(|_| root.clone())))
            }
            (None, None) => Source::Default(None),
        };
        let mut cache = MANAGERS.lock();
        if let Some(live) = cache.get(&source).and_then(Weak::upgrade) {
            return Ok(live);
        }
        let config = match &source {
            Source::File(path) => Config::load(path)?,
            Source::Default(root) => Config::embedded_default(root.as_deref())?,
        };
        let manager = block_on_detached(rt, StorageManager::with_registry(config, registry))?;
        let handle = Arc::new(ManagerHandle { manager, source: source.clone() });
        cache.get_or_insert_with(HashMap::new).insert(source, Arc::downgrade(&handle));
        Ok(handle)
    })
    .py_err()
}

/// A principal from a name (default: the current OS user) and roles.
pub fn principal(name: Option<String>, roles: Option<Vec<String>>) -> Principal {
    let mut p = match name {
        Some(n) => Principal::new(n),
        None => Principal::current_user(),
    };
    for role in roles.unwrap_or_default() {
        p = p.with_role(role.strip_prefix("role:").unwrap_or(&role).to_owned());
    }
    p
}

struct Open {
    handle: Arc<ManagerHandle>,
    session: Session,
}

/// An open manager seen by one principal; closed once, by `close()`.
pub struct StoreCore {
    open: RwLock<Option<Open>>,
    principal: Principal,
}

impl StoreCore {
    /// A view of `handle` as `principal`.
    pub fn new(handle: Arc<ManagerHandle>, principal: Principal) -> Self {
        let session = handle.manager.session(principal.clone());
        StoreCore { open: RwLock::new(Some(Open { handle, session })), principal }
    }

    fn closed() -> PyErr {
        to_py(Error::new(
            ErrorKind::InvalidInput,
            "the store is closed; open another with tierfs.open() or tierfs.open_async()",
        ))
    }

    /// The session, or an error once closed.
    pub fn session(&self) -> PyResult<Session> {
        match &*self.open.read() {
            Some(open) => Ok(open.session.clone()),
            None => Err(Self::closed()),
        }
    }

    /// The shared manager handle, or an error once closed.
    pub fn handle(&self) -> PyResult<Arc<ManagerHandle>> {
        match &*self.open.read() {
            Some(open) => Ok(open.handle.clone()),
            None => Err(Self::closed()),
        }
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.open.read().is_none()
    }

    /// The same manager as another principal.
    pub fn as_principal(&self, principal: Principal) -> PyResult<StoreCore> {
        Ok(StoreCore::new(self.handle()?, principal))
    }

    /// Detaches this view; returns the session to flush, if it was open.
    pub fn take(&self) -> Option<(Arc<ManagerHandle>, Session)> {
        self.open.write().take().map(|o| (o.handle, o.session))
    }
}
