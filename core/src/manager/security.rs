//! What the access gate decides with: the rules and audit log in force
//! ([`Security`]), one part of an operation to check ([`Check`]), and how
//! a refusal is worded ([`denial`]).

use std::sync::Arc;

use crate::access::{AccessEvaluator, Decision, StorageOperationType as Op};
use crate::audit::AuditLog;
use crate::error::{Error, ErrorKind};

/// The access rules and audit log in force, swapped whole on change.
#[derive(Debug)]
pub(crate) struct Security {
    pub access: Arc<AccessEvaluator>,
    pub audit: Option<Arc<AuditLog>>,
}

impl Security {
    /// Whether checks can be skipped: everyone may do everything and
    /// nothing is recorded.
    pub fn is_open(&self) -> bool {
        self.access.allows_everything() && self.audit.is_none()
    }
}

/// One part of an operation to check: a type on a key or prefix.
pub(crate) struct Check<'a> {
    pub op: Op,
    pub path: &'a str,
    pub prefix: bool,
}

impl<'a> Check<'a> {
    pub fn key(op: Op, key: &'a str) -> Self {
        Check { op, path: key, prefix: false }
    }

    /// `path` as a key, or as a directory prefix when it is empty (the
    /// root) or ends in `/`.
    pub fn path(op: Op, path: &'a str) -> Self {
        Check { op, path, prefix: path.is_empty() || path.ends_with('/') }
    }
}

/// Words a denial: who, what, where, which rule, and what to ask for.
pub(crate) fn denial(principal: &str, op: Op, path: &str, d: &Decision) -> Error {
    let why = match &d.rule {
        Some(rule) => format!("the rule `{rule}` decides"),
        None => format!("no rule matches and the default level is `{}`", d.level),
    };
    let shown = if path.is_empty() { "the root" } else { path };
    Error::new(
        ErrorKind::PermissionDenied,
        format!("`{principal}` may not {op} `{shown}`: {why}; ask an administrator for a rule granting {op}"),
    )
    .with_key(path)
}
