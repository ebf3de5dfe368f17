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
        Ok(Config { plugins: Vec::new(), backends, source: None })
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
        Ok(())
    }

    /// A `Config` error naming this file and `field`.
    pub fn error(&self, field: &str, message: &str) -> Error {
        Error::new(ErrorKind::Config, format!("{}: `{field}`: {message}", self.describe_source()))
    }

    /// The file this came from, for messages.
    pub fn describe_source(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "embedded default configuration".into(),
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
        T::deserialize(toml::Value::Table(self.table.clone()))
            .map_err(|e| self.config.error(&format!("backends.{}", self.name), e.to_string().trim_end()))
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
