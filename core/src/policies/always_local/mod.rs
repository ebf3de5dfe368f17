//! `always_local`: every operation on one backend, with no policy layer
//! in between (the manager calls it directly on the fast path).
//!
//! ```toml
//! [policy]
//! type = "always_local"
//! backend = "main"      # may be left out when only one backend is configured
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Member, PolicyContext, PolicyPlugin, PolicySettings};
use crate::error::Result;
use crate::storage::Storage;

/// The `always_local` policy type.
#[derive(Debug)]
pub struct AlwaysLocal;

/// Settings of an `always_local` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlwaysLocalConfig {
    /// The backend; the only one configured when left out.
    pub backend: Option<String>,
}

#[async_trait]
impl PolicyPlugin for AlwaysLocal {
    fn name(&self) -> &str {
        "always_local"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed: AlwaysLocalConfig = settings.parse()?;
        let backend = match parsed.backend {
            Some(backend) => backend,
            None => {
                let mut names = settings.config.backends.keys();
                match (names.next(), names.next()) {
                    (Some(only), None) => only.clone(),
                    _ => {
                        return Err(settings.error(
                            "backend",
                            "several backends are configured; name the one `always_local` uses",
                        ))
                    }
                }
            }
        };
        Ok(vec![settings.member("backend", &backend)])
    }

    async fn build(&self, context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        Ok(context.backends[0].clone())
    }
}
