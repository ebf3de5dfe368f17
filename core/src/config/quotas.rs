//! `[[quotas]]`: limits on the bytes and keys under a prefix.

use serde::Deserialize;

use super::Config;
use crate::error::Result;

/// One `[[quotas]]` entry.
///
/// ```toml
/// [[quotas]]
/// prefix = "home/alice/"      # a directory prefix, or "" for the whole store
/// max_bytes = 10737418240     # 10 GiB of values under it
/// max_keys = 100000
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// The keys counted: those starting with it.
    pub prefix: String,
    /// Most bytes of values under the prefix.
    pub max_bytes: Option<u64>,
    /// Most keys under the prefix.
    pub max_keys: Option<u64>,
}

impl QuotaConfig {
    pub(super) fn validate(&self, config: &Config, field: &str) -> Result<()> {
        let ok = self.prefix.is_empty()
            || (self.prefix.ends_with('/') && crate::key::validate_prefix(&self.prefix).is_ok());
        if !ok {
            return Err(config.error(
                &format!("{field}.prefix"),
                &format!(
                    "`{}` is not a directory prefix; write it like `home/alice/` (or `` for everything)",
                    self.prefix
                ),
            ));
        }
        if self.max_bytes.is_none() && self.max_keys.is_none() {
            return Err(config.error(field, "give `max_bytes`, `max_keys` or both"));
        }
        Ok(())
    }
}
