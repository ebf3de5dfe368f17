//! The access gate: every access decision, audit record and listing
//! filter of every face, in one place.
//!
//! Every operation of a [`Session`] passes here before any backend is
//! touched: each part is decided, one audit record is written with the
//! decision (failing closed if it cannot be), then the operation is refused
//! with `PermissionDenied` or goes on. Faces that act later than they ask
//! (the mount keeps a file's bytes until it is closed) call
//! [`Session::check`] at the time of the request, and [`Session::allows`]
//! to re-decide cheaply at each later step.

use super::security::{denial, Check, Security};
use super::session::Session;
use super::state::ManagerState;
use crate::access::{Decision, StorageOperationType as Op, Target};
use crate::audit::{AuditResult, OnFailure};
use crate::error::Result;
use crate::key::{validate_key, validate_prefix};
use crate::storage::{ListEntry, ListPage};

/// The detail of an allowed [`Session::check`] record: the operation was
/// decided ahead of the change itself (recorded again when it is made).
const CHECKED: &str = "checked ahead of the change";

impl Session {
    /// Authorizes `op` on `path` (a key; a directory prefix ending in `/`;
    /// `""` for the root) for this session's principal and writes the audit
    /// record, touching no backend. For faces that act on a request later
    /// (the mount writes a file's bytes when it is closed): check when the
    /// request comes, then perform it.
    ///
    /// ```
    /// use tierfs_core::access::StorageOperationType as Op;
    /// use tierfs_core::{Config, ErrorKind, StorageManager};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = Config::parse(
    ///     "[backends.m]\ntype = \"memory\"\n[access]\ndefault = \"none\"\n\
    ///      [[access.rules]]\nprincipal = \"alice\"\nresource = \"docs/\"\nlevel = \"read\"\n",
    ///     None,
    /// )?;
    /// let manager = StorageManager::open(config).await?;
    /// let alice = manager.session("alice");
    /// alice.check(Op::Read, "docs/a.txt")?;
    /// assert_eq!(alice.check(Op::Write, "docs/a.txt").unwrap_err().kind(), ErrorKind::PermissionDenied);
    /// assert!(!alice.allows(Op::Write, "docs/a.txt"));
    /// # Ok::<_, tierfs_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn check(&self, op: Op, path: &str) -> Result<()> {
        let check = Check::path(op, path);
        if check.prefix {
            validate_prefix(path)?;
        } else {
            validate_key(path)?;
        }
        if self.open_access() {
            return Ok(());
        }
        self.authorize_detailed(&self.state(), op.as_str(), &[check], Some(CHECKED))
    }

    /// Whether `op` on `path` (as for [`Session::check`]) would be allowed
    /// now, without an audit record: for re-deciding, at each later step,
    /// a request [`Session::check`] already recorded. Record a refusal with
    /// [`Session::check`].
    pub fn allows(&self, op: Op, path: &str) -> bool {
        if self.open_access() {
            return true;
        }
        let security = self.security();
        let state = self.state();
        self.decide(&security, &state, &Check::path(op, path)).allowed
    }

    /// Whether a listing shows directory `prefix` (ending in `/`) to this
    /// principal: it may read there, or read something inside through a
    /// grant that decides. For faces that add entries of their own to a
    /// listing (the mount's directories not yet in the store).
    pub fn shows_dir(&self, prefix: &str) -> bool {
        if self.open_access() {
            return true;
        }
        let security = self.security();
        let state = self.state();
        self.visible_dir(&security, &state, prefix)
    }

    fn decide(&self, security: &Security, state: &ManagerState, check: &Check<'_>) -> Decision {
        let backends = &state.router.route(check.path).backends;
        let target = if check.prefix {
            Target::Prefix { prefix: check.path, backends }
        } else {
            Target::Key { key: check.path, backends }
        };
        security.access.decide(self.principal(), check.op, target)
    }

    fn visible_dir(&self, security: &Security, state: &ManagerState, prefix: &str) -> bool {
        let access = &security.access;
        let backends = |path: &str| state.router.route(path).backends.clone();
        self.decide(security, state, &Check { op: Op::Read, path: prefix, prefix: true }).allowed
            || access.may_read_within(self.principal(), prefix, &backends)
    }

    /// Checks every part, records one audit line, and returns the
    /// denial if any part is refused.
    pub(crate) fn authorize(&self, state: &ManagerState, label: &str, checks: &[Check<'_>]) -> Result<()> {
        self.authorize_detailed(state, label, checks, None)
    }

    /// [`Session::authorize`], recording `detail` when allowed.
    fn authorize_detailed(
        &self,
        state: &ManagerState,
        label: &str,
        checks: &[Check<'_>],
        detail: Option<&str>,
    ) -> Result<()> {
        let security = self.security();
        if security.is_open() {
            return Ok(());
        }
        let mut refused = None;
        for check in checks {
            let decision = self.decide(&security, state, check);
            if !decision.allowed {
                refused = Some(denial(self.principal().id(), check.op, check.path, &decision));
                break;
            }
        }
        let keys: Vec<&str> = checks.iter().map(|c| c.path).collect();
        let detail = refused.as_ref().map(|e| e.message()).or(detail);
        self.record(&security, label, &keys, refused.is_none(), detail)?;
        refused.map_or(Ok(()), Err)
    }

    /// Authorizes a listing of `prefix`: List there, or a Read grant that
    /// decides somewhere inside (to navigate to it). Audited.
    pub(crate) fn authorize_list(&self, state: &ManagerState, prefix: &str) -> Result<()> {
        let security = self.security();
        let decision = self.decide(&security, state, &Check { op: Op::List, path: prefix, prefix: true });
        let backends = |path: &str| state.router.route(path).backends.clone();
        let allowed =
            decision.allowed || security.access.may_read_within(self.principal(), prefix, &backends);
        let refused = (!allowed).then(|| denial(self.principal().id(), Op::List, prefix, &decision));
        self.record(
            &security,
            crate::storage::Operation::List.audit_label(),
            &[prefix],
            refused.is_none(),
            refused.as_ref().map(|e| e.message()),
        )?;
        refused.map_or(Ok(()), Err)
    }

    /// Drops listing entries the principal may not read: objects it may not
    /// read, and directories it may neither read nor read anything inside.
    pub(crate) fn filter_listing(&self, state: &ManagerState, page: &mut ListPage) {
        let security = self.security();
        if security.access.allows_everything() {
            return;
        }
        page.entries.retain(|entry| match entry {
            ListEntry::Object(meta) => {
                self.decide(&security, state, &Check::key(Op::Read, meta.key.as_str())).allowed
            }
            ListEntry::Prefix(prefix) => self.visible_dir(&security, state, prefix),
        });
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
