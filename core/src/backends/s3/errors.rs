//! object_store errors as TierFS errors, decided in one place.

use crate::error::{Error, ErrorKind};

/// Maps an object_store error; `what` names the operation for the message.
pub(super) fn map(err: object_store::Error, backend: &str, op: &'static str, key: &str) -> Error {
    use object_store::Error as E;
    let (kind, retryable, hint) = match &err {
        E::NotFound { .. } => (ErrorKind::NotFound, false, "no such key"),
        E::AlreadyExists { .. } | E::Precondition { .. } => {
            (ErrorKind::AlreadyExists, false, "the key exists and the write asked that it did not")
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
            ErrorKind::PermissionDenied,
            false,
            "the object store refused the request; check the credentials and the bucket policy",
        ),
        E::NotSupported { .. } | E::NotImplemented { .. } => {
            (ErrorKind::Unsupported, false, "the object store does not support this")
        }
        E::InvalidPath { .. } => (ErrorKind::InvalidKey, false, "the object store refused the key"),
        E::UnknownConfigurationKey { .. } => (ErrorKind::Config, false, "invalid object store setting"),
        other => {
            let retryable = is_transient(&other.to_string());
            (ErrorKind::Unavailable, retryable, "the object store failed or could not be reached")
        }
    };
    Error::new(kind, hint)
        .with_source(err)
        .with_key(key)
        .with_backend(backend)
        .with_operation(op)
        .retryable(retryable)
}

/// Whether the text of an error describes a passing condition: a timeout,
/// a refused or reset connection, throttling or a 5xx answer.
pub(super) fn is_transient(message: &str) -> bool {
    const SIGNS: [&str; 12] = [
        "timed out",
        "timeout",
        "connection refused",
        "connection reset",
        "error sending request",
        "connect",
        "503",
        "502",
        "500",
        "504",
        "slowdown",
        "service unavailable",
    ];
    let m = message.to_ascii_lowercase();
    SIGNS.iter().any(|s| m.contains(s))
}
