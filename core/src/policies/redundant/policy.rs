//! The `redundant` policy type: a [`RedundantStorage`] over two or more
//! backends, with its hint log and background scrubber.
//!
//! ```toml
//! [policy]
//! type = "redundant"
//! backends = ["a", "b", "c"]     # read in this order
//! write_quorum = 2               # default: all of them
//! scrub_interval_secs = 60       # 0 turns background scrubs off
//! hints_path = "hints.log"       # default: see `RedundantConfig::hints_path`
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{RedundantStorage, ScrubReport};
use crate::config::Config;
use crate::error::Result;
use crate::policies::{Member, PolicyContext, PolicyHooks, PolicyPlugin, PolicySettings};
use crate::storage::Storage;

/// Seconds between background scrubs when not configured.
const DEFAULT_SCRUB_INTERVAL_SECS: u64 = 60;

/// The `redundant` policy type.
#[derive(Debug)]
pub struct Redundant;

/// Settings of a `redundant` policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedundantConfig {
    /// The member backends, read in this order.
    pub backends: Vec<String>,
    /// Members that must acknowledge a write (default: all).
    pub write_quorum: Option<usize>,
    /// Seconds between background scrubs (default 60; 0 turns it off).
    pub scrub_interval_secs: Option<u64>,
    /// The hint log, which keeps which member missed which write (and
    /// deletes) across a crash; relative to the configuration file.
    /// Default: see [`hints_path`](Self::hints_path).
    pub hints_path: Option<PathBuf>,
}

impl RedundantConfig {
    /// Where the set keeps its hint log: `hints_path` resolved against the
    /// file, else `hints-<member names joined by +>.log` in the directory
    /// of its first `local` member; `None` with neither (its hints live in
    /// memory: a key deleted while a member was down may come back after a
    /// crash).
    pub fn hints_path(&self, config: &Config) -> Option<PathBuf> {
        if let Some(path) = &self.hints_path {
            return Some(config.resolve_path(path));
        }
        let local_dir = self.backends.iter().find_map(|name| {
            let b = config.backends.get(name).filter(|b| b.kind == "local")?;
            Some(config.resolve_path(Path::new(b.settings.get("path")?.as_str()?)))
        })?;
        Some(local_dir.join(format!("hints-{}.log", self.backends.join("+"))))
    }
}

#[async_trait]
impl PolicyPlugin for Redundant {
    fn name(&self) -> &str {
        "redundant"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed: RedundantConfig = settings.parse()?;
        if parsed.hints_path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(settings.error("hints_path", "is empty; name the hint log file"));
        }
        let backends = &parsed.backends;
        if backends.len() < 2 {
            return Err(settings.error("backends", "a redundant policy needs at least 2 backends"));
        }
        let unique: std::collections::BTreeSet<_> = backends.iter().collect();
        if unique.len() != backends.len() {
            return Err(settings.error("backends", "a backend is listed twice"));
        }
        if let Some(q) = parsed.write_quorum {
            if q == 0 || q > backends.len() {
                return Err(settings.error(
                    "write_quorum",
                    &format!("{q} is out of range; allowed: 1 to {}", backends.len()),
                ));
            }
        }
        Ok(backends.iter().enumerate().map(|(i, b)| settings.member(&format!("backends[{i}]"), b)).collect())
    }

    async fn build(&self, mut context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: RedundantConfig = context.parse()?;
        let name = format!("redundant({})", context.backend_names.join(", "));
        let members = context.backends.clone();
        let quorum = parsed.write_quorum.unwrap_or(members.len());
        let metrics = context.metrics.clone();
        let storage = match parsed.hints_path(context.config) {
            Some(path) => RedundantStorage::with_hint_log(name, members, quorum, metrics, &path),
            None => {
                tracing::warn!(
                    policy = context.field,
                    "the redundant set has no `local` member and no `hints_path`: its hints live in memory, \
                     so a key deleted while a member is down may come back after a crash"
                );
                RedundantStorage::new(name, members, quorum, metrics)
            }
        }
        .map_err(|e| context.config.error(&context.field, e.message()))?;
        let interval = parsed.scrub_interval_secs.unwrap_or(DEFAULT_SCRUB_INTERVAL_SECS);
        if interval > 0 {
            context.spawn(storage.spawn_scrubber(Duration::from_secs(interval)));
        }
        context.hooks(Arc::new(Hooks(storage.clone())));
        Ok(storage)
    }
}

/// Scrubs on demand (`StorageManager::scrub`).
#[derive(Debug)]
struct Hooks(Arc<RedundantStorage>);

#[async_trait]
impl PolicyHooks for Hooks {
    async fn scrub(&self) -> Option<Result<ScrubReport>> {
        Some(self.0.scrub_once().await)
    }
}
