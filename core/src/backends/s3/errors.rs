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
    // object_store's retry errors always print their `retry_timeout`
    // setting and the time elapsed, so neither may decide: status codes
    // count only as whole words ("504", not the digits of "2.023504ms").
    let m = message.to_ascii_lowercase().replace("retry_timeout", "");
    let words: Vec<&str> = m.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    SIGNS
        .iter()
        .any(|s| if s.bytes().all(|b| b.is_ascii_digit()) { words.contains(s) } else { m.contains(s) })
}

#[cfg(test)]
mod tests {
    use super::is_transient;

    #[test]
    fn transient_signs_are_read_as_words() {
        let invalid_range =
            "Generic S3 error: Error performing GET http://127.0.0.1:39010/b/k in 2.023504ms, \
                             after 0 retries, max_retries: 3, retry_timeout: 30s - Server returned \
                             non-2xx status code: 416 Range Not Satisfiable: InvalidRange";
        assert!(!is_transient(invalid_range), "elapsed digits and retry_timeout decide nothing");
        assert!(!is_transient("status 404 Not Found, retry_timeout: 30s"));
        assert!(is_transient("Server returned non-2xx status code: 503 Service Unavailable"));
        assert!(is_transient("HTTP error: 504, after 3 retries"));
        assert!(is_transient("error sending request for url: operation timed out"));
        assert!(is_transient("tcp connect error: Connection refused (os error 111)"));
        assert!(is_transient("Please reduce your request rate. SlowDown"));
    }
}
