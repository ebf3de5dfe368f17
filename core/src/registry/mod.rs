//! `StoragePlugin` and `StorageRegistry`: backend types and policy types by name.
//!
//! Every backend type, built-in or not, is a [`StoragePlugin`] registered
//! under a type name; every policy type is a
//! [`PolicyPlugin`], the built-in ones
//! registered by [`StorageRegistry::with_builtins`] and others with
//! [`StorageRegistry::register_policy`]. The built-ins (`memory`, `local`) register like
//! everyone else; third-party types come from shared libraries loaded at
//! run time through the stable C ABI of the `tierfs-plugin-api` crate (see
//! [`StorageRegistry::load_library`]). Creating a backend of an unknown type
//! fails with an error that lists the registered ones. Every backend the
//! registry creates is wrapped in [`TracingStorage`].
//!
//! ```
//! use tierfs_core::config::Config;
//! use tierfs_core::registry::StorageRegistry;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let registry = StorageRegistry::with_builtins();
//! assert_eq!(registry.types(), ["local", "memory", "s3"]);
//!
//! let config = Config::parse("[backends.scratch]\ntype = \"memory\"\n", None)?;
//! let backends = registry.build(&config).await?;
//! assert_eq!(backends["scratch"].name(), "scratch");
//!
//! let bad = Config::parse("[backends.x]\ntype = \"nfs\"\n", None)?;
//! let err = registry.build(&bad).await.unwrap_err();
//! assert!(err.to_string().contains("registered types are: local, memory, s3"), "{err}");
//! # Ok::<_, tierfs_core::Error>(())
//! # }).unwrap();
//! ```

mod builtin;
#[cfg(feature = "plugins")]
mod dynamic;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

pub use builtin::{LocalPlugin, LocalSettings, MemoryPlugin, MemorySettings, S3Plugin};
#[cfg(feature = "plugins")]
pub use dynamic::PLUGIN_ABI_VERSION;

use crate::config::{BackendSettings, Config};
use crate::error::{Error, ErrorKind, Result};
use crate::layers::TracingStorage;
use crate::policies::PolicyPlugin;
use crate::storage::Storage;

/// A backend type: a name and a factory.
#[async_trait]
pub trait StoragePlugin: Send + Sync + std::fmt::Debug {
    /// The type name used in configuration (`type = "..."`).
    fn type_name(&self) -> &str;

    /// Creates a backend named `settings.name` from its settings, refusing
    /// unknown fields and bad values with [`BackendSettings::error`].
    async fn create(&self, settings: BackendSettings<'_>) -> Result<Arc<dyn Storage>>;
}

/// Backend types and policy types by name.
#[derive(Debug, Default)]
pub struct StorageRegistry {
    plugins: RwLock<BTreeMap<String, Arc<dyn StoragePlugin>>>,
    /// Built-in policy types and registered policies, by name.
    policies: RwLock<BTreeMap<String, Arc<dyn PolicyPlugin>>>,
    /// Libraries loaded, by canonical path, with the types each gave.
    #[cfg_attr(not(feature = "plugins"), allow(dead_code))]
    libraries: parking_lot::Mutex<BTreeMap<std::path::PathBuf, Vec<String>>>,
}

impl StorageRegistry {
    /// A registry with no backend type and no policy type in it.
    pub fn empty() -> Self {
        StorageRegistry::default()
    }

    /// A registry holding the built-in backend types, `memory`, `local`
    /// and `s3`, and the built-in policy types (see [`crate::policies`]).
    pub fn with_builtins() -> Self {
        let registry = StorageRegistry::empty();
        registry.register(Arc::new(MemoryPlugin)).expect("fresh registry");
        registry.register(Arc::new(LocalPlugin)).expect("fresh registry");
        registry.register(Arc::new(S3Plugin)).expect("fresh registry");
        for policy in crate::policies::builtins() {
            registry.register_policy(policy).expect("fresh registry");
        }
        registry
    }

    /// Adds a backend type; a name already taken is refused.
    pub fn register(&self, plugin: Arc<dyn StoragePlugin>) -> Result<()> {
        let name = plugin.type_name().to_owned();
        crate::config::validate_name(&name).map_err(|why| Error::new(ErrorKind::InvalidInput, why))?;
        let mut plugins = self.plugins.write();
        if plugins.contains_key(&name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a backend type named `{name}` is already registered; pick another type name"),
            ));
        }
        plugins.insert(name, plugin);
        Ok(())
    }

    /// Loads a plugin library and registers the backend types it provides;
    /// returns their names. The library must export the `tierfs-plugin-api`
    /// entry points built for [`PLUGIN_ABI_VERSION`].
    ///
    /// Loading a library that is already loaded (the same canonical path)
    /// registers nothing new and returns its types again, so configuration
    /// reloads may name it again.
    pub fn load_library(&self, path: &Path) -> Result<Vec<String>> {
        #[cfg(not(feature = "plugins"))]
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "cannot load {}: this build of TierFS loads no plugins; build tierfs-core with the \
                 `plugins` feature (on by default)",
                path.display()
            ),
        ));
        #[cfg(feature = "plugins")]
        {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            let mut libraries = self.libraries.lock();
            if let Some(names) = libraries.get(&canonical) {
                return Ok(names.clone());
            }
            let plugins = dynamic::load(path)?;
            let names: Vec<String> = plugins.iter().map(|p| p.type_name().to_owned()).collect();
            for plugin in plugins {
                self.register(plugin)?;
            }
            libraries.insert(canonical, names.clone());
            Ok(names)
        }
    }

    /// Loads every plugin library `config` names.
    pub fn load_libraries(&self, config: &Config) -> Result<()> {
        for library in &config.plugins {
            let path = config.resolve_path(library);
            self.load_library(&path).map_err(|e| config.error("plugins", e.message()))?;
        }
        Ok(())
    }

    /// Adds a policy, used as `type = "custom"` with `name = "..."`; a
    /// name already taken (a built-in type's too) is refused.
    pub fn register_policy(&self, policy: Arc<dyn PolicyPlugin>) -> Result<()> {
        let name = policy.name().to_owned();
        crate::config::validate_name(&name).map_err(|why| Error::new(ErrorKind::InvalidInput, why))?;
        let mut policies = self.policies.write();
        if policies.contains_key(&name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a policy named `{name}` is already registered; pick another name"),
            ));
        }
        policies.insert(name, policy);
        Ok(())
    }

    /// The policy type a configured `type` names; the error lists the registered ones.
    pub fn policy_type(&self, kind: &str) -> Result<Arc<dyn PolicyPlugin>> {
        self.find_policy(kind, true).map_err(|known| {
            Error::new(ErrorKind::Config, format!("unknown policy type `{kind}`; registered types: {known}"))
        })
    }

    /// A policy registered with [`register_policy`](Self::register_policy)
    /// (not a built-in type); the error lists the registered ones.
    pub fn custom_policy(&self, name: &str) -> Result<Arc<dyn PolicyPlugin>> {
        self.find_policy(name, false).map_err(|known| {
            Error::new(
                ErrorKind::Config,
                format!("unknown custom policy `{name}`; registered policies: {known}"),
            )
        })
    }

    /// The policy named `name` among the built-in types (`builtin`) or the
    /// registered ones; else the names of those, for the error.
    fn find_policy(&self, name: &str, builtin: bool) -> std::result::Result<Arc<dyn PolicyPlugin>, String> {
        let builtins: Vec<String> = crate::policies::builtins().iter().map(|p| p.name().to_owned()).collect();
        let wanted = |n: &str| builtins.iter().any(|b| b == n) == builtin;
        let policies = self.policies.read();
        policies.get(name).filter(|_| wanted(name)).cloned().ok_or_else(|| {
            let known: Vec<&str> = policies.keys().map(String::as_str).filter(|k| wanted(k)).collect();
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        })
    }

    /// The registered type names, sorted.
    pub fn types(&self) -> Vec<String> {
        self.plugins.read().keys().cloned().collect()
    }

    /// Looks a type up; the error lists the registered types.
    pub fn plugin(&self, type_name: &str) -> Result<Arc<dyn StoragePlugin>> {
        self.plugins.read().get(type_name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "unknown backend type `{type_name}`; registered types are: {}",
                    self.types().join(", ")
                ),
            )
        })
    }

    /// Creates backend `name` of `config`, wrapped in [`TracingStorage`].
    pub async fn create(&self, config: &Config, name: &str) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(TracingStorage::new(self.create_bare(config, name).await?)))
    }

    /// Creates backend `name` of `config` with no layer around it (the
    /// manager adds its own, [`ManagedStorage`](crate::layers::ManagedStorage)).
    pub async fn create_bare(&self, config: &Config, name: &str) -> Result<Arc<dyn Storage>> {
        let backend = config
            .backends
            .get(name)
            .ok_or_else(|| config.error("backends", &format!("no backend named `{name}` is configured")))?;
        let plugin = self
            .plugin(&backend.kind)
            .map_err(|e| config.error(&format!("backends.{name}.type"), e.message()))?;
        let settings = BackendSettings { name, table: &backend.settings, config };
        plugin.create(settings).await
    }

    /// Loads the configured plugin libraries, then creates every backend.
    pub async fn build(&self, config: &Config) -> Result<BTreeMap<String, Arc<dyn Storage>>> {
        self.load_libraries(config)?;
        let mut backends = BTreeMap::new();
        for name in config.backends.keys() {
            backends.insert(name.clone(), self.create(config, name).await?);
        }
        Ok(backends)
    }
}

/// Builds without optional features refuse what needs them, naming the
/// feature (run by the lint stage: `cargo test -p tierfs-core
/// --no-default-features --lib registry`).
#[cfg(all(test, not(feature = "s3"), not(feature = "plugins"), not(feature = "redis")))]
mod without_features {
    use super::*;

    #[tokio::test]
    async fn each_missing_feature_is_named() {
        let registry = StorageRegistry::with_builtins();
        let config = Config::parse("[backends.b]\ntype = \"s3\"\nbucket = \"x\"\n", None).unwrap();
        let e = registry.build(&config).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("`s3` feature"), "{e}");

        let e = registry.load_library(Path::new("/nonexistent/libplugin.so")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("`plugins` feature"), "{e}");

        let config = Config::parse(
            "[backends.m]\ntype = \"memory\"\n[policy]\ntype = \"prefer_cache\"\nprimary = \"m\"\n\
             cache = { tier = \"redis\", redis_url = \"redis://127.0.0.1:1\" }\n",
            None,
        )
        .unwrap();
        let e = crate::StorageManager::open(config).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("`redis` feature"), "{e}");
    }
}
