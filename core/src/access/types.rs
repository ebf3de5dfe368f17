//! The vocabulary of access control: levels, operation types, resources,
//! rules and the policy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::key::{validate_key, validate_prefix};

/// The kind of an operation, as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageOperationType {
    /// get, get_range, stat, read.
    Read,
    /// put, write; the target of a rename or copy.
    Write,
    /// delete; the source of a rename.
    Delete,
    /// list.
    List,
    /// A batch (each inner operation is also checked as itself).
    Batch,
    /// Administration: backends, policies, rules, reloads, the audit log.
    Admin,
}

impl StorageOperationType {
    /// Every type.
    pub const ALL: [StorageOperationType; 6] = [
        StorageOperationType::Read,
        StorageOperationType::Write,
        StorageOperationType::Delete,
        StorageOperationType::List,
        StorageOperationType::Batch,
        StorageOperationType::Admin,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageOperationType::Read => "read",
            StorageOperationType::Write => "write",
            StorageOperationType::Delete => "delete",
            StorageOperationType::List => "list",
            StorageOperationType::Batch => "batch",
            StorageOperationType::Admin => "admin",
        }
    }
}

impl fmt::Display for StorageOperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageOperationType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StorageOperationType::ALL.into_iter().find(|t| t.as_str() == s.to_ascii_lowercase()).ok_or_else(
            || {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("unknown operation `{s}`; allowed: read, write, delete, list, batch, admin"),
                )
            },
        )
    }
}

/// What a rule grants.
///
/// `Read` covers Read and List; `Write` covers Write, Delete and Batch;
/// `Admin` covers Admin; `Full` covers everything; `None` nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    /// Nothing: an explicit denial.
    #[default]
    None,
    /// Read and List.
    Read,
    /// Write, Delete and Batch.
    Write,
    /// Admin.
    Admin,
    /// Everything.
    Full,
}

impl AccessLevel {
    /// Whether this level allows `op`.
    pub fn covers(self, op: StorageOperationType) -> bool {
        use StorageOperationType as T;
        match self {
            AccessLevel::None => false,
            AccessLevel::Read => matches!(op, T::Read | T::List),
            AccessLevel::Write => matches!(op, T::Write | T::Delete | T::Batch),
            AccessLevel::Admin => op == T::Admin,
            AccessLevel::Full => true,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::None => "none",
            AccessLevel::Read => "read",
            AccessLevel::Write => "write",
            AccessLevel::Admin => "admin",
            AccessLevel::Full => "full",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [AccessLevel::None, AccessLevel::Read, AccessLevel::Write, AccessLevel::Admin, AccessLevel::Full]
            .into_iter()
            .find(|l| l.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("unknown level `{s}`; allowed: none, read, write, admin, full"),
                )
            })
    }
}

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// One key (`a/b.txt`).
    Key(String),
    /// Every key under a directory (`a/b/`, also written `a/b/*`), and the
    /// directory's own key `a/b`. Stored with its trailing `/`.
    Prefix(String),
    /// Every key routed to a backend (`@main`).
    Backend(String),
    /// Everything (`*`).
    All,
}

impl Resource {
    /// Parses the written form, refusing what is not a valid key, prefix or
    /// backend name.
    pub fn parse(s: &str) -> Result<Resource> {
        let bad = |why: String| Error::new(ErrorKind::InvalidInput, format!("invalid resource `{s}`: {why}"));
        if s == "*" {
            return Ok(Resource::All);
        }
        if let Some(name) = s.strip_prefix('@') {
            crate::config::validate_name(name).map_err(bad)?;
            return Ok(Resource::Backend(name.to_owned()));
        }
        let prefix =
            s.strip_suffix("/*").map(|p| format!("{p}/")).or_else(|| s.ends_with('/').then(|| s.to_owned()));
        if let Some(prefix) = prefix {
            validate_prefix(&prefix).map_err(|e| bad(e.message().to_owned()))?;
            return Ok(Resource::Prefix(prefix));
        }
        validate_key(s).map_err(|e| bad(e.message().to_owned()))?;
        Ok(Resource::Key(s.to_owned()))
    }

    /// How specific the resource is; a higher value wins.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            Resource::Key(k) => (3, k.len()),
            Resource::Prefix(p) => (2, p.len()),
            Resource::Backend(_) => (1, 0),
            Resource::All => (0, 0),
        }
    }

    /// Whether this resource lies inside `outer` (for delegation).
    pub fn is_within(&self, outer: &Resource) -> bool {
        match (outer, self) {
            (Resource::All, _) => true,
            (Resource::Backend(a), Resource::Backend(b)) => a == b,
            (Resource::Prefix(p), Resource::Prefix(q)) => q.starts_with(p.as_str()),
            (Resource::Prefix(p), Resource::Key(k)) => k.starts_with(p.as_str()) || format!("{k}/") == *p,
            (Resource::Key(a), Resource::Key(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Key(k) => f.write_str(k),
            Resource::Prefix(p) => f.write_str(p),
            Resource::Backend(b) => write!(f, "@{b}"),
            Resource::All => f.write_str("*"),
        }
    }
}

/// Which principals a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalPattern {
    /// One user id.
    User(String),
    /// Everyone holding a role (`role:NAME`; FUSE maps groups to `group:NAME`).
    Role(String),
    /// Everyone (`*`).
    Any,
}

impl PrincipalPattern {
    /// Parses `alice`, `role:staff` or `*`.
    pub fn parse(s: &str) -> Result<PrincipalPattern> {
        if s == "*" {
            return Ok(PrincipalPattern::Any);
        }
        let (kind, name) = match s.strip_prefix("role:") {
            Some(role) => ("role", role),
            None => ("principal", s),
        };
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("invalid {kind} `{s}`: use a name without spaces, `role:NAME`, or `*`"),
            ));
        }
        Ok(if kind == "role" {
            PrincipalPattern::Role(name.to_owned())
        } else {
            PrincipalPattern::User(name.to_owned())
        })
    }
}

impl fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalPattern::User(u) => f.write_str(u),
            PrincipalPattern::Role(r) => write!(f, "role:{r}"),
            PrincipalPattern::Any => f.write_str("*"),
        }
    }
}

/// One rule: `principal` doing `operation` (or any, when `None`) on
/// `resource` gets `level`.
///
/// Two rules are the same rule when these four parts are equal, whoever
/// added them: `added_by` records provenance, not identity.
///
/// ```
/// use tierfs_core::access::{AccessLevel, AccessRule};
///
/// let rule = AccessRule::parse("role:staff", "docs/", "*", "read").unwrap();
/// assert_eq!(rule.level, AccessLevel::Read);
/// assert_eq!(rule.to_string(), "role:staff read on docs/ (any operation)");
/// assert!(AccessRule::parse("bob", "docs/../etc/", "*", "read").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// Who.
    pub principal: PrincipalPattern,
    /// On what.
    pub resource: Resource,
    /// For which operation type; `None` matches every type.
    pub operation: Option<StorageOperationType>,
    /// What is granted.
    pub level: AccessLevel,
    /// Who added the rule at run time, and with what authority; `None` for
    /// a rule of the configuration (or set whole by an administrator of
    /// `*`), which only an administrator of `*` may remove.
    pub added_by: Option<Provenance>,
}

/// Who added a rule at run time, and from how high.
///
/// `authority` is the broadest resource enclosing the rule on which the
/// adder held admin when it added it (`*` for an administrator of
/// everything). A delegate may remove a rule only when its own authority
/// encloses the rule's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Provenance {
    /// The adder's principal id.
    pub principal: String,
    /// The adder's authority.
    pub authority: Resource,
}

impl AccessRule {
    /// A rule from its written parts; `operation` is a type name or `*`.
    pub fn parse(principal: &str, resource: &str, operation: &str, level: &str) -> Result<AccessRule> {
        Ok(AccessRule {
            principal: PrincipalPattern::parse(principal)?,
            resource: Resource::parse(resource)?,
            operation: if operation == "*" { None } else { Some(operation.parse()?) },
            level: level.parse()?,
            added_by: None,
        })
    }

    /// The authority behind the rule: its adder's, or `*` for a rule of
    /// the configuration.
    pub fn authority(&self) -> &Resource {
        self.added_by.as_ref().map_or(&Resource::All, |p| &p.authority)
    }

    fn identity(&self) -> (&PrincipalPattern, &Resource, &Option<StorageOperationType>, &AccessLevel) {
        (&self.principal, &self.resource, &self.operation, &self.level)
    }
}

impl PartialEq for AccessRule {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for AccessRule {}

impl std::hash::Hash for AccessRule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for AccessRule {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AccessRule {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.principal, self.level, self.resource)?;
        match self.operation {
            Some(op) => write!(f, " (for {op})"),
            None => f.write_str(" (any operation)"),
        }
    }
}

/// The rules and the level that applies when none matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Every rule.
    pub rules: Vec<AccessRule>,
    /// The level when no rule matches.
    pub default: AccessLevel,
}

impl AccessPolicy {
    /// Everyone may do everything: the embedded default.
    pub fn allow_all() -> Self {
        AccessPolicy { rules: Vec::new(), default: AccessLevel::Full }
    }

    /// The policy in its configuration form.
    pub fn to_config(&self) -> AccessConfig {
        AccessConfig {
            default: self.default,
            rules: self
                .rules
                .iter()
                .map(|r| RuleConfig {
                    principal: r.principal.to_string(),
                    resource: r.resource.to_string(),
                    operation: r.operation.map_or_else(star, |o| o.as_str().to_owned()),
                    level: r.level,
                    added_by: r.added_by.as_ref().map(|p| p.principal.clone()),
                    authority: r.added_by.as_ref().map(|p| p.authority.to_string()),
                })
                .collect(),
        }
    }
}

/// `[access]` in the configuration file.
///
/// ```toml
/// [access]
/// default = "none"
///
/// [[access.rules]]
/// principal = "role:staff"   # a user id, role:NAME, or *
/// resource = "docs/"         # a key, a prefix a/b/ or a/b/*, @backend, or *
/// operation = "*"            # read, write, delete, list, batch, admin, or *
/// level = "read"             # none, read, write, admin, full
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The level when no rule matches (default `none` once `[access]` exists).
    #[serde(default = "default_none")]
    pub default: AccessLevel,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn default_none() -> AccessLevel {
    AccessLevel::None
}

/// One `[[access.rules]]` entry, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A user id, `role:NAME` or `*`.
    pub principal: String,
    /// A key, a prefix, `@backend` or `*`.
    pub resource: String,
    /// An operation type or `*` (default `*`).
    #[serde(default = "star")]
    pub operation: String,
    /// The level granted.
    pub level: AccessLevel,
    /// Who added the rule at run time (carried through reloads of rules
    /// added through the admin API; a rule written here without it is a
    /// rule of the configuration).
    #[serde(default)]
    pub added_by: Option<String>,
    /// The adder's authority (a resource), with `added_by`.
    #[serde(default)]
    pub authority: Option<String>,
}

fn star() -> String {
    "*".to_owned()
}

impl AccessConfig {
    /// The policy, refusing invalid rules with the index of the rule.
    pub fn policy(&self, config: &crate::config::Config) -> Result<AccessPolicy> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let mut rule = AccessRule::parse(&r.principal, &r.resource, &r.operation, r.level.as_str())
                .map_err(|e| config.error(&format!("access.rules[{i}]"), e.message()))?;
            rule.added_by = match (&r.added_by, &r.authority) {
                (None, None) => None,
                (Some(principal), Some(authority)) => {
                    let authority = Resource::parse(authority)
                        .map_err(|e| config.error(&format!("access.rules[{i}].authority"), e.message()))?;
                    if !rule.resource.is_within(&authority) {
                        return Err(config.error(
                            &format!("access.rules[{i}].authority"),
                            &format!("`{authority}` does not enclose the rule's resource `{}`", rule.resource),
                        ));
                    }
                    Some(Provenance { principal: principal.clone(), authority })
                }
                _ => {
                    return Err(config.error(
                        &format!("access.rules[{i}]"),
                        "`added_by` and `authority` go together; remove both to make it a rule of the configuration",
                    ))
                }
            };
            if let Resource::Backend(b) = &rule.resource {
                config.check_backend(&format!("access.rules[{i}].resource"), b)?;
            }
            rules.push(rule);
        }
        Ok(AccessPolicy { rules, default: self.default })
    }
}
