//! The `tiered` policy type: a [`TieredStorage`] over a hot and a cold
//! backend, with its migrator running in the background.
//!
//! ```toml
//! [policy]
//! type = "tiered"
//! hot = "ssd"
//! cold = "archive"
//! migration = { demote_after_secs = 86400 }   # see MigrationSettings
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{MigrationSettings, TieredStorage};
use crate::error::Result;
use crate::policies::{Member, PolicyContext, PolicyPlugin, PolicySettings};
use crate::storage::Storage;

/// The `tiered` policy type.
#[derive(Debug)]
pub struct Tiered;

/// Settings of a `tiered` policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TieredConfig {
    /// Where new writes go and hot keys live.
    pub hot: String,
    /// Where keys go once cold.
    pub cold: String,
    /// When keys move.
    #[serde(default)]
    pub migration: MigrationSettings,
}

#[async_trait]
impl PolicyPlugin for Tiered {
    fn name(&self) -> &str {
        "tiered"
    }

    fn members(&self, settings: &PolicySettings<'_>) -> Result<Vec<Member>> {
        let parsed: TieredConfig = settings.parse()?;
        if parsed.hot == parsed.cold {
            return Err(settings.error("cold", "the cold tier must differ from the hot tier"));
        }
        parsed.migration.validate(settings.config, &format!("{}.migration", settings.field))?;
        Ok(vec![settings.member("hot", &parsed.hot), settings.member("cold", &parsed.cold)])
    }

    async fn build(&self, mut context: PolicyContext<'_>) -> Result<Arc<dyn Storage>> {
        let parsed: TieredConfig = context.parse()?;
        let (hot, cold) = (context.backends[0].clone(), context.backends[1].clone());
        let tiered = TieredStorage::new(
            format!("tiered({}, {})", hot.name(), cold.name()),
            hot,
            cold,
            parsed.migration,
            context.metrics.clone(),
        );
        context.spawn(tiered.spawn_migrator());
        Ok(tiered)
    }
}
