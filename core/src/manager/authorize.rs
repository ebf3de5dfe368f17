//! The one access check and audit record of every operation.
//!
//! Order: decide every part of the operation, write one audit record with
//! the decision (fail closed if it cannot be written), then refuse with
//! `PermissionDenied` or let the operation reach the backends.

use std::sync::Arc;

use super::session::Session;
use super::state::ManagerState;
use crate::access::{AccessEvaluator, Decision, StorageOperationType, Target};
use crate::audit::{AuditLog, AuditResult, OnFailure};
use crate::error::{Error, ErrorKind, Result};

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
    pub op: StorageOperationType,
    pub path: &'a str,
    pub prefix: bool,
}

impl<'a> Check<'a> {
    pub fn key(op: StorageOperationType, key: &'a str) -> Self {
        Check { op, path: key, prefix: false }
    }
}

/// Words a denial: who, what, where, which rule, and what to ask for.
pub(crate) fn denial(principal: &str, op: StorageOperationType, path: &str, d: &Decision) -> Error {
    let why = match &d.rule {
        Some(rule) => format!("the rule `{rule}` decides"),
        None => format!("no rule matches and the default level is `{}`", d.level),
    };
    Error::new(
        ErrorKind::PermissionDenied,
        format!("`{principal}` may not {op} `{path}`: {why}; ask an administrator for a rule granting {op}"),
    )
    .with_key(path)
}

impl Session {
    /// Checks every part, records one audit line, and returns the
    /// denial if any part is refused.
    pub(crate) fn authorize(&self, state: &ManagerState, label: &str, checks: &[Check<'_>]) -> Result<()> {
        let security = self.security();
        if security.is_open() {
            return Ok(());
        }
        let mut refused = None;
        for check in checks {
            let backends = &state.router.route(check.path).backends;
            let target = if check.prefix {
                Target::Prefix { prefix: check.path, backends }
            } else {
                Target::Key { key: check.path, backends }
            };
            let decision = security.access.decide(self.principal(), check.op, target);
            if !decision.allowed {
                refused = Some(denial(self.principal().id(), check.op, check.path, &decision));
                break;
            }
        }
        let keys: Vec<&str> = checks.iter().map(|c| c.path).collect();
        self.record(&security, label, &keys, refused.is_none(), refused.as_ref().map(|e| e.message()))?;
        refused.map_or(Ok(()), Err)
    }

    /// Writes one audit record, failing closed unless the configuration
    /// says otherwise.
    pub(crate) fn record(
        &self,
        security: &Security,
        label: &str,
        keys: &[&str],
        allowed: bool,
        detail: Option<&str>,
    ) -> Result<()> {
        let Some(audit) = &security.audit else { return Ok(()) };
        let result = if allowed { AuditResult::Allowed } else { AuditResult::Denied };
        match audit.append(self.principal().id(), label, keys, result, detail) {
            Ok(()) => Ok(()),
            Err(e) if audit.config().on_failure == OnFailure::Open => {
                tracing::error!(error = %e, "audit record lost; the operation goes ahead (on_failure = open)");
                Ok(())
            }
            Err(e) => Err(e.with_operation("audit")),
        }
    }
}
