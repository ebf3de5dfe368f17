//! The one error type of TierFS.
//!
//! Every failure is an [`Error`] with an [`ErrorKind`] (what went wrong, in
//! terms a caller can act on), a message saying what to do, and context: the
//! key, the backend and the operation, plus whether retrying may help. Each
//! front end maps [`ErrorKind`] exactly once (errno, Python exception, Node
//! `err.code`).

use std::fmt;
use std::sync::Arc;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarse enough for a caller to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key (or backend, rule, ...) does not exist.
    NotFound,
    /// The access policy refuses the operation.
    PermissionDenied,
    /// The key breaks the key grammar (see [`Key`](crate::Key)).
    InvalidKey,
    /// An argument other than the key is wrong (a range, a batch, a setting).
    InvalidInput,
    /// The target exists and the operation required that it did not.
    AlreadyExists,
    /// The backend cannot do this (see its [`Capabilities`](crate::Capabilities)).
    Unsupported,
    /// The backend is down, timed out or failed at I/O, retries spent.
    Unavailable,
    /// The configuration is invalid; the message names the file and field.
    Config,
    /// A condition on the value's current state failed: it changed since
    /// the caller read it (see [`Condition`](crate::Condition)).
    Conflict,
    /// A quota (`[[quotas]]`) would be exceeded: the write is refused whole.
    QuotaExceeded,
}

impl ErrorKind {
    /// A stable lower-case name, used in messages and by the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Config => "configuration error",
            ErrorKind::Conflict => "conflict",
            ErrorKind::QuotaExceeded => "quota exceeded",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What exactly went wrong, for callers that act on the cause rather than
/// the kind (the mount answers `ENAMETOOLONG` instead of `EINVAL`).
///
/// ```
/// use tierfs_core::{ErrorDetail, Key};
///
/// let err = Key::new("a/".to_owned() + &"x".repeat(300)).unwrap_err();
/// assert_eq!(err.detail(), Some(ErrorDetail::NameTooLong { len: 300, limit: 255 }));
/// assert_eq!(Key::new("a//b").unwrap_err().detail(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// A key, or one segment of it, is `len` bytes where at most `limit` are allowed.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The most allowed.
        limit: usize,
    },
}

/// A TierFS error: kind, message, context and optional source.
///
/// ```
/// use tierfs_core::{Error, ErrorKind};
///
/// let err = Error::not_found("a/b").with_backend("main").with_operation("get");
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.key(), Some("a/b"));
/// assert_eq!(err.to_string(), "not found: get `a/b` on backend `main`: no such key");
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    key: Option<String>,
    backend: Option<String>,
    operation: Option<&'static str>,
    detail: Option<ErrorDetail>,
    retryable: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message saying what happened and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                key: None,
                backend: None,
                operation: None,
                detail: None,
                retryable: false,
                source: None,
            }),
        }
    }

    /// Sets the detail of the cause.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.inner.detail = Some(detail);
        self
    }

    /// The detail of the cause, when one was given.
    pub fn detail(&self) -> Option<ErrorDetail> {
        self.inner.detail
    }

    /// `NotFound` for `key`.
    pub fn not_found(key: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, "no such key").with_key(key)
    }

    /// `Unavailable` carrying an I/O error; retryable when the I/O error
    /// suggests a passing condition.
    pub fn io(message: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let retryable = matches!(
            err.kind(),
            K::Interrupted | K::WouldBlock | K::TimedOut | K::ConnectionReset | K::ConnectionAborted
        );
        Error::new(ErrorKind::Unavailable, message).with_source(err).retryable(retryable)
    }

    /// Sets the key this error is about.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// Sets the key unless one is already set.
    pub fn or_key(mut self, key: &str) -> Self {
        if self.inner.key.is_none() {
            self.inner.key = Some(key.to_owned());
        }
        self
    }

    /// Sets the backend unless one is already set (the innermost backend wins).
    pub fn with_backend(mut self, backend: impl Into<String>) -> Self {
        if self.inner.backend.is_none() {
            self.inner.backend = Some(backend.into());
        }
        self
    }

    /// Sets the operation unless one is already set.
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        if self.inner.operation.is_none() {
            self.inner.operation = Some(operation);
        }
        self
    }

    /// Marks whether retrying the same call may succeed.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.inner.retryable = retryable;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// The backend that failed, if known.
    pub fn backend(&self) -> Option<&str> {
        self.inner.backend.as_deref()
    }

    /// The operation that failed, if known.
    pub fn operation(&self) -> Option<&'static str> {
        self.inner.operation
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        self.inner.retryable
    }

    /// Whether the cause is a full device or a spent quota (`ENOSPC`,
    /// `EDQUOT`) somewhere in the chain of sources: the backend is up, but
    /// nothing more can be written until space is freed.
    ///
    /// ```
    /// use tierfs_core::Error;
    ///
    /// let full = Error::io("cannot write", std::io::Error::from_raw_os_error(28));
    /// assert!(full.is_out_of_space());
    /// assert!(!Error::not_found("k").is_out_of_space());
    /// ```
    pub fn is_out_of_space(&self) -> bool {
        use std::io::ErrorKind as K;
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if matches!(io.kind(), K::StorageFull | K::QuotaExceeded) {
                    return true;
                }
            }
            next = e.source();
        }
        false
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}", i.kind)?;
        let mut sep = ": ";
        if let Some(op) = i.operation {
            write!(f, "{sep}{op}")?;
            sep = " ";
        }
        if let Some(key) = &i.key {
            write!(f, "{sep}`{key}`")?;
            sep = " ";
        }
        if let Some(backend) = &i.backend {
            write!(f, "{sep}on backend `{backend}`")?;
        }
        write!(f, ": {}", i.message)?;
        if let Some(source) = &i.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Error")
            .field("kind", &i.kind)
            .field("message", &i.message)
            .field("key", &i.key)
            .field("backend", &i.backend)
            .field("operation", &i.operation)
            .field("retryable", &i.retryable)
            .field("source", &i.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_deref().map(|s| s as _)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::io("I/O error", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_context() {
        let e = Error::new(ErrorKind::Unavailable, "disk full; free space and retry")
            .with_key("k")
            .with_backend("local")
            .with_operation("put")
            .retryable(true);
        assert_eq!(e.to_string(), "unavailable: put `k` on backend `local`: disk full; free space and retry");
        assert!(e.is_retryable());
    }

    #[test]
    fn innermost_context_wins() {
        let e = Error::not_found("k").with_backend("inner").with_backend("outer");
        assert_eq!(e.backend(), Some("inner"));
    }

    #[test]
    fn error_is_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
