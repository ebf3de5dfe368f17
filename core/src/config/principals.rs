//! `[principals."ID"]` and `[principals."role:NAME"]`: per-principal
//! profiles (the storage class of the keys they create, the classes they
//! may use).

use serde::Deserialize;

use super::Config;
use crate::error::Result;

/// One `[principals."..."]` table.
///
/// ```toml
/// [principals."agent-7"]
/// default_class = "cache_only"              # keys it creates, unless it names one
/// allowed_classes = ["cache_only", "persistent"]
///
/// [principals."role:workers"]
/// default_class = "distributed"
/// ```
///
/// A user's own table wins over its roles'; among roles, the first of the
/// principal's roles that has a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalProfile {
    /// The storage class of keys the principal creates without naming one
    /// (where neither the key nor its directory has a class).
    pub default_class: Option<String>,
    /// The classes the principal may name (and may give keys and
    /// directories); `None`: every class.
    pub allowed_classes: Option<Vec<String>>,
}

impl PrincipalProfile {
    pub(super) fn validate(&self, config: &Config, name: &str) -> Result<()> {
        let field = format!("principals.\"{name}\"");
        if name.is_empty() || name == "role:" {
            return Err(config.error(&field, "name a user id or `role:NAME`"));
        }
        if let (Some(default), Some(allowed)) = (&self.default_class, &self.allowed_classes) {
            if !allowed.contains(default) {
                return Err(config.error(
                    &format!("{field}.default_class"),
                    &format!(
                        "`{default}` is not among `allowed_classes`; add it there or choose one of them"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the profile lets its principal use class `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.allowed_classes.as_ref().is_none_or(|allowed| allowed.iter().any(|c| c == name))
    }
}
