use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::error::Result;

/// When keys move between the tiers of a [`TieredStorage`](super::TieredStorage).
///
/// ```toml
/// [policy]
/// type = "tiered"
/// hot = "ssd"
/// cold = "archive"
/// migration = { demote = true, demote_after_secs = 86400, promote_after_reads = 3, interval_secs = 60 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSettings {
    /// Whether idle keys move down at all (default true).
    pub demote: bool,
    /// Move a key to the cold tier once neither written nor read for this
    /// many seconds (default 86400, a day; 0: at the next pass).
    pub demote_after_secs: u64,
    /// Move a cold key back to the hot tier after this many reads (default
    /// 3; 0 never promotes).
    pub promote_after_reads: u32,
    /// Seconds between migration passes (default 60).
    pub interval_secs: u64,
    /// Most keys moved in one pass (default 10000).
    pub max_moves_per_pass: usize,
}

impl Default for MigrationSettings {
    fn default() -> Self {
        MigrationSettings {
            demote: true,
            demote_after_secs: 86_400,
            promote_after_reads: 3,
            interval_secs: 60,
            max_moves_per_pass: 10_000,
        }
    }
}

impl MigrationSettings {
    /// Checks ranges, naming `field` of `config` in errors.
    pub fn validate(&self, config: &Config, field: &str) -> Result<()> {
        if self.interval_secs == 0 || self.interval_secs > 86_400 * 7 {
            return Err(config.error(
                &format!("{field}.interval_secs"),
                &format!("{} is out of range; allowed: 1 to 604800", self.interval_secs),
            ));
        }
        if self.max_moves_per_pass == 0 {
            return Err(config.error(&format!("{field}.max_moves_per_pass"), "must be at least 1"));
        }
        Ok(())
    }

    /// The demotion age, if demotion is on.
    pub fn demote_after(&self) -> Option<Duration> {
        self.demote.then(|| Duration::from_secs(self.demote_after_secs))
    }
}
