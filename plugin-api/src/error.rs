//! [`PluginError`]: what a plugin's safe Rust side returns.

use std::fmt;

use crate::abi::PluginStatus;

/// What went wrong; mirrors TierFS's `ErrorKind` and the ABI's
/// [`PluginStatus`] codes one to one. More kinds may come (as statuses
/// older hosts read as `UNAVAILABLE`), so a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginErrorKind {
    /// The key does not exist.
    NotFound,
    /// The backend refuses the operation.
    PermissionDenied,
    /// The key is not acceptable to the backend.
    InvalidKey,
    /// An argument other than the key is wrong.
    InvalidInput,
    /// The key exists and the operation required that it did not.
    AlreadyExists,
    /// The backend cannot do this.
    Unsupported,
    /// The backend is down or failed at I/O.
    Unavailable,
    /// The backend's settings are wrong.
    Config,
    /// The device or quota that holds the data is full; the backend is up.
    OutOfSpace,
    /// A condition on the value's current state failed: it changed since
    /// the caller read it.
    Conflict,
}

impl PluginErrorKind {
    /// The ABI status code of this kind.
    pub fn status(self) -> PluginStatus {
        match self {
            PluginErrorKind::NotFound => PluginStatus::NOT_FOUND,
            PluginErrorKind::PermissionDenied => PluginStatus::PERMISSION_DENIED,
            PluginErrorKind::InvalidKey => PluginStatus::INVALID_KEY,
            PluginErrorKind::InvalidInput => PluginStatus::INVALID_INPUT,
            PluginErrorKind::AlreadyExists => PluginStatus::ALREADY_EXISTS,
            PluginErrorKind::Unsupported => PluginStatus::UNSUPPORTED,
            PluginErrorKind::Unavailable => PluginStatus::UNAVAILABLE,
            PluginErrorKind::Config => PluginStatus::CONFIG,
            PluginErrorKind::OutOfSpace => PluginStatus::OUT_OF_SPACE,
            PluginErrorKind::Conflict => PluginStatus::CONFLICT,
        }
    }
}

/// An error of a plugin: a kind, a message saying what to do, optionally
/// the key it is about, and whether retrying may help.
///
/// ```
/// use tierfs_plugin_api::{PluginError, PluginErrorKind};
///
/// let e = PluginError::already_exists().with_key("a/b");
/// assert_eq!(e.kind(), PluginErrorKind::AlreadyExists);
/// assert_eq!(e.key(), Some("a/b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    kind: PluginErrorKind,
    message: String,
    key: Option<String>,
    retryable: bool,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: PluginErrorKind, message: impl Into<String>) -> Self {
        PluginError { kind, message: message.into(), key: None, retryable: false }
    }

    /// `NotFound`: no such key.
    pub fn not_found() -> Self {
        PluginError::new(PluginErrorKind::NotFound, "no such key")
    }

    /// `AlreadyExists`: the key exists and the operation asked that it did not.
    pub fn already_exists() -> Self {
        PluginError::new(PluginErrorKind::AlreadyExists, "the key exists and the put asked that it did not")
    }

    /// `InvalidInput` with `message`.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        PluginError::new(PluginErrorKind::InvalidInput, message)
    }

    /// `Unsupported` with `message`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        PluginError::new(PluginErrorKind::Unsupported, message)
    }

    /// `Unavailable` with `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        PluginError::new(PluginErrorKind::Unavailable, message)
    }

    /// `Conflict` with `message`: the value changed since the caller read
    /// it (a failed `if_version`).
    pub fn conflict(message: impl Into<String>) -> Self {
        PluginError::new(PluginErrorKind::Conflict, message)
    }

    /// `Config` with `message` (name the field in it).
    pub fn config(message: impl Into<String>) -> Self {
        PluginError::new(PluginErrorKind::Config, message)
    }

    /// `Unavailable` for an I/O failure (`OutOfSpace` when the device or
    /// quota is full): `context` says what was being done; retryable when
    /// the I/O error suggests a passing condition.
    ///
    /// ```
    /// use tierfs_plugin_api::{PluginError, PluginErrorKind};
    ///
    /// let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
    /// assert_eq!(PluginError::io("appending", full).kind(), PluginErrorKind::OutOfSpace);
    /// ```
    pub fn io(context: &str, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        if matches!(err.kind(), K::StorageFull | K::QuotaExceeded) {
            return PluginError::new(
                PluginErrorKind::OutOfSpace,
                format!("{context}: {err}; free space on the device"),
            );
        }
        let retryable = matches!(
            err.kind(),
            K::Interrupted | K::WouldBlock | K::TimedOut | K::ConnectionReset | K::ConnectionAborted
        );
        PluginError::new(PluginErrorKind::Unavailable, format!("{context}: {err}")).retryable(retryable)
    }

    /// Names the key this error is about.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Marks whether retrying the same call may succeed.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> PluginErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The key, if one was named.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(key) = &self.key {
            write!(f, " `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<std::io::Error> for PluginError {
    fn from(err: std::io::Error) -> Self {
        PluginError::io("I/O error", err)
    }
}
