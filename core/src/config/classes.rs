//! `[classes.NAME]`: storage classes, requirements over the backends'
//! properties that a write may name (see `docs/storage-classes.md`).

use serde::Deserialize;

use super::{validate_name, Config, PolicyConfig};
use crate::error::Result;

/// A property a storage class requires of the backends that hold its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Acknowledged writes survive a restart (`Capabilities::persistent`).
    Durable,
    /// Other hosts see the values (`Capabilities::shared`): an S3 bucket, a cluster.
    Shared,
    /// Never written to a durable backend: the values may vanish (a memory
    /// backend loses them when the process stops).
    Ephemeral,
}

impl Requirement {
    /// The word used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Durable => "durable",
            Requirement::Shared => "shared",
            Requirement::Ephemeral => "ephemeral",
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classes that exist without configuration, wherever a configured
/// backend can provide them, with what each requires.
pub const DEFAULT_CLASSES: [(&str, &[Requirement]); 3] = [
    ("persistent", &[Requirement::Durable]),
    ("distributed", &[Requirement::Durable, Requirement::Shared]),
    ("cache_only", &[Requirement::Ephemeral]),
];

/// One `[classes.NAME]` table.
///
/// ```toml
/// [classes.fast]
/// requires = ["durable"]      # durable, shared, ephemeral
/// backend = "nvme"            # or: policy = { type = "redundant", backends = [...] }
///
/// [classes.distributed]       # a default class given a policy of its own
/// policy = { type = "prefer_cache", cache = "local", primary = "garage" }
/// ```
///
/// Without `backend` or `policy` the class keeps a key on its route's
/// stack when that meets the requirement, else on the first backend that
/// does (the default route's backends first). Without `requires`, a
/// default class (`persistent`, `distributed`, `cache_only`) keeps its
/// own requirement and any other class requires nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// What the backends holding the class's keys must be.
    #[serde(default)]
    pub requires: Option<Vec<Requirement>>,
    /// The backend, when the class needs no policy.
    pub backend: Option<String>,
    /// The policy that provides the class.
    pub policy: Option<PolicyConfig>,
}

impl ClassConfig {
    /// The class's policy, from `backend` or `policy`; `None` when the
    /// class leaves the choice to the manager.
    pub fn policy(&self) -> Option<PolicyConfig> {
        match (&self.policy, &self.backend) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(b)) => Some(PolicyConfig::always_local(b)),
            (None, None) => None,
        }
    }

    /// What class `name` configured like this requires.
    pub fn requirements(&self, name: &str) -> Vec<Requirement> {
        match &self.requires {
            Some(list) => {
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
            None => default_requirements(name).map(<[Requirement]>::to_vec).unwrap_or_default(),
        }
    }

    pub(super) fn validate(&self, config: &Config, name: &str) -> Result<()> {
        let field = format!("classes.{name}");
        validate_name(name).map_err(|why| config.error(&field, &why))?;
        let requires = self.requirements(name);
        if requires.contains(&Requirement::Durable) && requires.contains(&Requirement::Ephemeral) {
            return Err(config.error(
                &format!("{field}.requires"),
                "asks for `durable` and `ephemeral` at once; keep one",
            ));
        }
        match (&self.backend, &self.policy) {
            (Some(_), Some(_)) => Err(config.error(&field, "give `backend` or `policy`, not both")),
            (Some(b), None) => config.check_backend(&format!("{field}.backend"), b),
            (None, Some(p)) => p.validate(config, &format!("{field}.policy")),
            (None, None) => Ok(()),
        }
    }
}

/// What default class `name` requires; `None` if it is not one.
pub fn default_requirements(name: &str) -> Option<&'static [Requirement]> {
    DEFAULT_CLASSES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}
