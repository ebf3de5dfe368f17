//! Configuration: one TOML file naming backends by type, with their settings.
//!
//! ```toml
//! # Shared libraries that register more backend types (see `registry`).
//! plugins = ["/usr/lib/tierfs/libtierfs_plugin_appendlog.so"]
//!
//! [backends.main]
//! type = "local"
//! path = "/var/lib/tierfs"     # relative paths are taken from the file's directory
//!
//! [backends.scratch]
//! type = "memory"
//! ```
//!
//! Unknown fields, unknown types and bad values are refused with the file,
//! the field and what is allowed. With no file, [`Config::embedded_default`]
//! gives one `local` backend in the user's data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

mod classes;
mod principals;
mod quotas;

pub use classes::{default_requirements, ClassConfig, Requirement, DEFAULT_CLASSES};
pub use principals::PrincipalProfile;
pub use quotas::QuotaConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shared libraries to load before creating backends; each registers
    /// one or more backend types.
    #[serde(default)]
    pub plugins: Vec<PathBuf>,
    /// Named backends, in name order.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// The policy for keys no route claims (`[policy]`); default:
    /// `always_local` on the only backend.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Prefix routes (`[[routes]]`), the longest matching prefix wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Storage classes (`[classes.NAME]`) beyond, or replacing, the
    /// defaults (`persistent`, `distributed`, `cache_only`).
    #[serde(default)]
    pub classes: BTreeMap<String, ClassConfig>,
    /// Profiles of users (`[principals."ID"]`) and roles
    /// (`[principals."role:NAME"]`).
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalProfile>,
    /// Limits on the bytes and keys under prefixes (`[[quotas]]`).
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    /// Timeouts, retries and probing of every backend (`[health]`).
    #[serde(default)]
    pub health: HealthConfig,
    /// Access rules (`[access]`); without it everyone may do everything.
    #[serde(default)]
    pub access: Option<crate::access::AccessConfig>,
    /// The audit log (`[audit]`); without it nothing is recorded.
    #[serde(default)]
    pub audit: Option<crate::audit::AuditConfig>,
    /// Where the file was read from (`None` for the embedded default).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// One `[backends.NAME]` table: a type and that type's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackendConfig {
    /// The registered type name (`memory`, `local`, or a plugin's).
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field, checked by the type's plugin.
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the configuration file {}: {e}; check the path", path.display()),
            )
        })?;
        Config::parse(&text, Some(path))
    }

    /// Parses and validates configuration text; `source` names it in errors
    /// and anchors relative paths.
    pub fn parse(text: &str, source: Option<&Path>) -> Result<Config> {
        let where_ = source.map(|p| p.display().to_string()).unwrap_or_else(|| "configuration".into());
        let mut config: Config = toml::from_str(text)
            .map_err(|e| Error::new(ErrorKind::Config, format!("{where_}: {}", e.to_string().trim_end())))?;
        config.source = source.map(Path::to_path_buf);
        config.validate()?;
        Ok(config)
    }

    /// The embedded default: one persistent `local` backend named `local`,
    /// in `root` or else the user's data directory (`$XDG_DATA_HOME/tierfs`).
    pub fn embedded_default(root: Option<&Path>) -> Result<Config> {
        let path = match root {
            Some(root) => root.to_path_buf(),
            None => default_data_dir()?,
        };
        let mut settings = toml::Table::new();
        settings.insert("path".into(), toml::Value::String(path.display().to_string()));
        let mut backends = BTreeMap::new();
        backends.insert("local".to_owned(), BackendConfig { kind: "local".into(), settings });
        Ok(Config { backends, ..Config::default() })
    }

    /// The profile that applies to `principal`: its own table, else that
    /// of the first of its roles that has one.
    pub fn profile(&self, principal: &crate::access::Principal) -> Option<&PrincipalProfile> {
        if self.principals.is_empty() {
            return None;
        }
        self.principals.get(principal.id()).or_else(|| {
            principal.roles().iter().find_map(|role| self.principals.get(&format!("role:{role}")))
        })
    }

    /// Checks what the TOML grammar cannot: names and the presence of backends.
    pub fn validate(&self) -> Result<()> {
        if self.backends.is_empty() {
            return Err(self.error(
                "backends",
                "no backend is configured; add one such as `[backends.main]` with `type = \"local\"`",
            ));
        }
        for name in self.backends.keys() {
            validate_name(name).map_err(|why| self.error(&format!("backends.{name}"), &why))?;
        }
        if let Some(policy) = &self.policy {
            policy.validate(self, "policy")?;
        }
        let mut prefixes = std::collections::BTreeSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let field = format!("routes[{i}]");
            route.validate(self, &field)?;
            if !prefixes.insert(route.prefix.as_str()) {
                return Err(self.error(&field, &format!("prefix `{}` is routed twice", route.prefix)));
            }
        }
        for (name, class) in &self.classes {
            class.validate(self, name)?;
        }
        for (name, profile) in &self.principals {
            profile.validate(self, name)?;
        }
        let mut quoted = std::collections::BTreeSet::new();
        for (i, quota) in self.quotas.iter().enumerate() {
            let field = format!("quotas[{i}]");
            quota.validate(self, &field)?;
            if !quoted.insert(quota.prefix.as_str()) {
                return Err(
                    self.error(&field, &format!("prefix `{}` has two quotas; keep one", quota.prefix))
                );
            }
        }
        self.health.validate(self)?;
        self.access_policy()?;
        if let Some(audit) = &self.audit {
            if audit.path.as_os_str().is_empty() {
                return Err(self.error("audit.path", "is empty; name the log file"));
            }
            if !(1..=65536).contains(&audit.max_file_mib) {
                return Err(self.error(
                    "audit.max_file_mib",
                    &format!("{} is out of range; allowed: 1 to 65536", audit.max_file_mib),
                ));
            }
            if !(1..=10_000).contains(&audit.max_files) {
                return Err(self.error(
                    "audit.max_files",
                    &format!("{} is out of range; allowed: 1 to 10000", audit.max_files),
                ));
            }
        }
        Ok(())
    }

    /// The access policy: the `[access]` rules, or everyone allowed
    /// everything when there is no `[access]` section.
    pub fn access_policy(&self) -> Result<crate::access::AccessPolicy> {
        match &self.access {
            Some(access) => access.policy(self),
            None => Ok(crate::access::AccessPolicy::allow_all()),
        }
    }

    /// The audit settings with the log path resolved against the file's directory.
    pub fn audit_config(&self) -> Option<crate::audit::AuditConfig> {
        self.audit.as_ref().map(|a| crate::audit::AuditConfig {
            path: self.resolve_path(&a.path),
            key_file: a.key_file.as_deref().map(|p| self.resolve_path(p)),
            seal_file: a.seal_file.as_deref().map(|p| self.resolve_path(p)),
            ..a.clone()
        })
    }

    /// Checks that `name` is a configured backend, for a reference at `field`.
    pub fn check_backend(&self, field: &str, name: &str) -> Result<()> {
        if self.backends.contains_key(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.backends.keys().map(String::as_str).collect();
        Err(self
            .error(field, &format!("no backend named `{name}`; configured backends: {}", known.join(", "))))
    }

    /// The policy for keys no route claims.
    /// Without `[policy]`, that is `always_local` on the first backend.
    pub fn default_policy(&self) -> PolicyConfig {
        self.policy.clone().unwrap_or_else(|| {
            PolicyConfig::always_local(self.backends.keys().next().map_or("", String::as_str))
        })
    }

    /// A `Config` error naming this file and `field`.
    pub fn error(&self, field: &str, message: &str) -> Error {
        Error::new(ErrorKind::Config, format!("{}: `{field}`: {message}", self.describe_source()))
    }

    /// The file this came from, for messages.
    pub fn describe_source(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "configuration".into(),
        }
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        match (&self.source, path.is_relative()) {
            (Some(source), true) => source.parent().unwrap_or(Path::new(".")).join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// A storage policy as configured: a registered policy type and that
/// type's settings (see [`policies`](crate::policies)).
///
/// ```toml
/// [policy]
/// type = "prefer_cache"          # always_local | prefer_cache | redundant | tiered | custom
/// primary = "main"
/// cache = { capacity_mib = 256, write = "through" }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyConfig {
    /// The policy type (`always_local`, `prefer_cache`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field, checked by the type.
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl PolicyConfig {
    /// An `always_local` policy on `backend`.
    ///
    /// ```
    /// use tierfs_core::config::PolicyConfig;
    /// let p = PolicyConfig::always_local("main");
    /// assert_eq!(p.kind(), "always_local");
    /// assert_eq!(p.settings["backend"].as_str(), Some("main"));
    /// ```
    pub fn always_local(backend: &str) -> Self {
        let mut settings = toml::Table::new();
        settings.insert("backend".into(), toml::Value::String(backend.to_owned()));
        PolicyConfig { kind: "always_local".into(), settings }
    }

    /// The policy type, for messages (`always_local`, ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The backends this policy uses, in order; empty when its settings
    /// are not valid (they are checked when the configuration is parsed).
    pub fn backends(&self, config: &Config) -> Vec<String> {
        self.members(config, "policy")
            .map(|members| members.into_iter().map(|m| m.backend).collect())
            .unwrap_or_default()
    }

    /// The members the policy's type names, with their fields.
    pub(crate) fn members(&self, config: &Config, field: &str) -> Result<Vec<crate::policies::Member>> {
        let plugin = crate::policies::builtin(&self.kind).ok_or_else(|| {
            let known: Vec<String> =
                crate::policies::builtins().iter().map(|p| p.name().to_owned()).collect();
            config.error(
                &format!("{field}.type"),
                &format!(
                    "unknown policy type `{}`; allowed: {} (a registered policy is `type = \"custom\"` with its `name`)",
                    self.kind,
                    known.join(", ")
                ),
            )
        })?;
        plugin.members(&crate::policies::PolicySettings { config, field, table: &self.settings })
    }

    fn validate(&self, config: &Config, field: &str) -> Result<()> {
        for member in self.members(config, field)? {
            config.check_backend(&member.field, &member.backend)?;
        }
        Ok(())
    }
}

/// One `[[routes]]` entry: keys under `prefix` go to `backend` (shorthand
/// for an `always_local` policy) or to `policy`.
///
/// ```toml
/// [[routes]]
/// prefix = "tmp/"
/// backend = "scratch"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A key prefix ending in `/`.
    pub prefix: String,
    /// The backend, when the route needs no policy.
    pub backend: Option<String>,
    /// The policy of this route.
    pub policy: Option<PolicyConfig>,
}

impl RouteConfig {
    /// The route's policy, from `backend` or `policy`.
    pub fn policy(&self) -> PolicyConfig {
        match (&self.policy, &self.backend) {
            (Some(p), _) => p.clone(),
            (None, Some(b)) => PolicyConfig::always_local(b),
            (None, None) => PolicyConfig { kind: "always_local".into(), settings: toml::Table::new() },
        }
    }

    fn validate(&self, config: &Config, field: &str) -> Result<()> {
        let prefix_ok = self.prefix.ends_with('/') && crate::key::validate_prefix(&self.prefix).is_ok();
        if !prefix_ok {
            return Err(config.error(
                &format!("{field}.prefix"),
                &format!("`{}` is not a directory prefix; write it like `tmp/` or `a/b/`", self.prefix),
            ));
        }
        match (&self.backend, &self.policy) {
            (Some(_), Some(_)) => Err(config.error(field, "give `backend` or `policy`, not both")),
            (None, None) => {
                Err(config.error(field, "give the `backend` or the `policy` this prefix goes to"))
            }
            (Some(b), None) => config.check_backend(&format!("{field}.backend"), b),
            (None, Some(p)) => p.validate(config, &format!("{field}.policy")),
        }
    }
}

/// `[health]`: timeouts, retries and probing, for every backend.
///
/// ```toml
/// [health]
/// timeout_ms = 30000     # a call slower than this fails (remote backends)
/// retries = 2            # retries of a retryable failure
/// probe_ms = 250         # first wait before probing an unhealthy backend
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Longest a call may take, in milliseconds.
    pub timeout_ms: u64,
    /// Retries of a retryable failure.
    pub retries: u32,
    /// First wait before probing an unhealthy backend, in milliseconds.
    pub probe_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        let d = crate::layers::HealthOptions::default();
        HealthConfig {
            timeout_ms: d.timeout.as_millis() as u64,
            retries: d.retries,
            probe_ms: d.probe_backoff.as_millis() as u64,
        }
    }
}

impl HealthConfig {
    fn validate(&self, config: &Config) -> Result<()> {
        if !(10..=3_600_000).contains(&self.timeout_ms) {
            return Err(config.error(
                "health.timeout_ms",
                &format!("{} is out of range; allowed: 10 to 3600000", self.timeout_ms),
            ));
        }
        if self.retries > 10 {
            return Err(config
                .error("health.retries", &format!("{} is out of range; allowed: 0 to 10", self.retries)));
        }
        if !(1..=60_000).contains(&self.probe_ms) {
            return Err(config.error(
                "health.probe_ms",
                &format!("{} is out of range; allowed: 1 to 60000", self.probe_ms),
            ));
        }
        Ok(())
    }

    /// As layer options.
    pub fn options(&self) -> crate::layers::HealthOptions {
        crate::layers::HealthOptions {
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            probe_backoff: std::time::Duration::from_millis(self.probe_ms),
            ..Default::default()
        }
    }
}

/// The user's data directory for TierFS.
pub fn default_data_dir() -> Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("tierfs")).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "cannot find the user's data directory (is $HOME set?); pass a root directory instead",
        )
    })
}

/// Backend names: 1 to 64 of `a-z A-Z 0-9 _ -`.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid name; use 1 to 64 letters, digits, `_` or `-`"))
    }
}

/// Deserializes `table` (found at `field` of `config`) into `T`, wording
/// any error with the file and the field.
pub fn parse_table<T: DeserializeOwned>(config: &Config, field: &str, table: &toml::Table) -> Result<T> {
    T::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| config.error(field, e.to_string().trim_end()))
}

/// The settings of one backend, handed to its plugin with enough context
/// to word errors and resolve paths.
#[derive(Debug, Clone)]
pub struct BackendSettings<'a> {
    /// The backend's name.
    pub name: &'a str,
    /// The table, without `type`.
    pub table: &'a toml::Table,
    /// The configuration it came from.
    pub config: &'a Config,
}

impl BackendSettings<'_> {
    /// Deserializes the table into `T` (use `#[serde(deny_unknown_fields)]`),
    /// wording any error with the file and the `backends.NAME` field.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use tierfs_core::config::{BackendSettings, Config};
    ///
    /// #[derive(Debug, Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct S { path: String }
    ///
    /// let config = Config::parse("[backends.b]\ntype = \"x\"\npth = \"/d\"\n", None).unwrap();
    /// let table = &config.backends["b"].settings;
    /// let err = BackendSettings { name: "b", table, config: &config }.parse::<S>().unwrap_err();
    /// assert!(err.to_string().contains("unknown field `pth`, expected `path`"), "{err}");
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        parse_table(self.config, &format!("backends.{}", self.name), self.table)
    }

    /// A `Config` error about `field` of this backend.
    pub fn error(&self, field: &str, message: &str) -> Error {
        self.config.error(&format!("backends.{}.{field}", self.name), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backends() {
        let c = Config::parse(
            "plugins = [\"libx.so\"]\n[backends.main]\ntype = \"local\"\npath = \"data\"\n[backends.m]\ntype = \"memory\"\n",
            Some(Path::new("/etc/tierfs/tierfs.toml")),
        )
        .unwrap();
        assert_eq!(c.backends["main"].kind, "local");
        assert_eq!(c.backends["main"].settings["path"].as_str(), Some("data"));
        assert_eq!(c.resolve_path(Path::new("data")), PathBuf::from("/etc/tierfs/data"));
        assert_eq!(c.resolve_path(&c.plugins[0]), PathBuf::from("/etc/tierfs/libx.so"));
    }

    #[test]
    fn refuses_unknown_top_level_fields_with_file_and_choices() {
        let e = Config::parse("backend = 1\n", Some(Path::new("/x/t.toml"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let msg = e.to_string();
        assert!(msg.contains("/x/t.toml") && msg.contains("unknown field `backend`"), "{msg}");
        assert!(msg.contains("`backends`"), "{msg}");
    }

    #[test]
    fn refuses_missing_type_and_bad_names() {
        let e = Config::parse("[backends.a]\npath = \"x\"\n", None).unwrap_err();
        assert!(e.to_string().contains("missing field `type`"), "{e}");
        let e = Config::parse("[backends.\"a b\"]\ntype = \"memory\"\n", None).unwrap_err();
        assert!(e.to_string().contains("`backends.a b`"), "{e}");
        let e = Config::parse("", None).unwrap_err();
        assert!(e.to_string().contains("no backend is configured"), "{e}");
    }

    #[test]
    fn embedded_default_is_one_local_store() {
        let c = Config::embedded_default(Some(Path::new("/tmp/x"))).unwrap();
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.backends["local"].settings["path"].as_str(), Some("/tmp/x"));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    const BACKENDS: &str = "[backends.main]\ntype = \"memory\"\n[backends.tmp]\ntype = \"memory\"\n";

    fn parse(extra: &str) -> Result<Config> {
        Config::parse(&format!("{BACKENDS}{extra}"), Some(Path::new("t.toml")))
    }

    #[test]
    fn routes_and_policies_parse() {
        let c = parse(
            "[policy]\ntype = \"redundant\"\nbackends = [\"main\", \"tmp\"]\nwrite_quorum = 1\n\
             [[routes]]\nprefix = \"tmp/\"\nbackend = \"tmp\"\n",
        )
        .unwrap();
        assert_eq!(c.default_policy().kind(), "redundant");
        assert_eq!(c.routes[0].policy(), PolicyConfig::always_local("tmp"));
    }

    #[test]
    fn bad_policies_name_the_field() {
        for (extra, needle) in [
            (
                "[policy]\ntype = \"fastest\"\n",
                "`policy.type`: unknown policy type `fastest`; allowed: always_local",
            ),
            ("[policy]\ntype = \"always_local\"\n", "`policy.backend`"),
            ("[policy]\ntype = \"always_local\"\nbackend = \"nope\"\n", "no backend named `nope`"),
            (
                "[policy]\ntype = \"redundant\"\nbackends = [\"main\", \"tmp\"]\nwrite_quorum = 3\n",
                "`policy.write_quorum`: 3 is out of range",
            ),
            ("[policy]\ntype = \"always_local\"\nbackend = \"main\"\ncolour = 1\n", "unknown field `colour`"),
            ("[[routes]]\nprefix = \"tmp\"\nbackend = \"tmp\"\n", "`routes[0].prefix`"),
            ("[[routes]]\nprefix = \"a/\"\n", "`routes[0]`: give the `backend`"),
            ("[health]\ntimeout_ms = 0\n", "`health.timeout_ms`"),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(needle), "{extra:?}: {e}");
            assert!(e.to_string().contains("t.toml"), "{e}");
        }
    }
}
