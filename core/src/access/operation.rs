use std::fmt;

use super::types::{AccessRule, StorageOperationType};

/// An administrative command, as checked (Admin) and audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Add a backend at run time.
    AddBackend {
        /// Its name.
        name: String,
    },
    /// Remove a backend no route or policy uses.
    RemoveBackend {
        /// Its name.
        name: String,
    },
    /// Replace the default policy, or a route's.
    SetPolicy {
        /// The route prefix; `None` for the default policy.
        route: Option<String>,
    },
    /// Load the plugin libraries named by the configuration again.
    ReloadPlugins,
    /// Replace the whole configuration.
    ReloadConfig,
    /// Replace every access rule.
    SetAccessPolicy,
    /// Read the access rules.
    ReadAccessPolicy,
    /// Add one rule.
    AddRule(AccessRule),
    /// Remove one rule.
    RemoveRule(AccessRule),
    /// Read the audit log.
    QueryAudit,
}

impl AdminCommand {
    /// The audit label (`admin:add_rule`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            AdminCommand::AddBackend { .. } => "admin:add_backend",
            AdminCommand::RemoveBackend { .. } => "admin:remove_backend",
            AdminCommand::SetPolicy { .. } => "admin:set_policy",
            AdminCommand::ReloadPlugins => "admin:reload_plugins",
            AdminCommand::ReloadConfig => "admin:reload_config",
            AdminCommand::SetAccessPolicy => "admin:set_access_policy",
            AdminCommand::ReadAccessPolicy => "admin:read_access_policy",
            AdminCommand::AddRule(_) => "admin:add_rule",
            AdminCommand::RemoveRule(_) => "admin:remove_rule",
            AdminCommand::QueryAudit => "admin:query_audit",
        }
    }
}

impl fmt::Display for AdminCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminCommand::AddBackend { name } => write!(f, "add backend `{name}`"),
            AdminCommand::RemoveBackend { name } => write!(f, "remove backend `{name}`"),
            AdminCommand::SetPolicy { route: Some(r) } => write!(f, "set the policy of route `{r}`"),
            AdminCommand::SetPolicy { route: None } => f.write_str("set the default policy"),
            AdminCommand::ReloadPlugins => f.write_str("reload plugins"),
            AdminCommand::ReloadConfig => f.write_str("reload the configuration"),
            AdminCommand::SetAccessPolicy => f.write_str("replace the access rules"),
            AdminCommand::ReadAccessPolicy => f.write_str("read the access rules"),
            AdminCommand::AddRule(r) => write!(f, "add rule `{r}`"),
            AdminCommand::RemoveRule(r) => write!(f, "remove rule `{r}`"),
            AdminCommand::QueryAudit => f.write_str("read the audit log"),
        }
    }
}

/// An operation as access control sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOperation {
    /// Read a key.
    Read {
        /// The key.
        key: String,
    },
    /// Write a key.
    Write {
        /// The key.
        key: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// List a prefix.
    List {
        /// The prefix.
        prefix: String,
    },
    /// A batch over keys.
    Batch {
        /// The keys.
        keys: Vec<String>,
    },
    /// An administrative command.
    Admin(AdminCommand),
}

impl StorageOperation {
    /// The operation type rules match on.
    pub fn kind(&self) -> StorageOperationType {
        match self {
            StorageOperation::Read { .. } => StorageOperationType::Read,
            StorageOperation::Write { .. } => StorageOperationType::Write,
            StorageOperation::Delete { .. } => StorageOperationType::Delete,
            StorageOperation::List { .. } => StorageOperationType::List,
            StorageOperation::Batch { .. } => StorageOperationType::Batch,
            StorageOperation::Admin(_) => StorageOperationType::Admin,
        }
    }
}
