//! The one place where a core [`Error`] becomes a JavaScript `Error`.
//!
//! Every rejected promise and every exception thrown by a sync twin is an
//! `Error` object (so `err instanceof Error` holds) carrying, like Node's own
//! `fs` errors:
//!
//! | property | value |
//! |---|---|
//! | `code` | `ENOENT`, `EACCES`, `EINVAL`, `EEXIST`, `ENOTSUP`, `ESTALE` or `EIO` ([`code`]); `ENOSPC` for an `Unavailable` error whose cause is a full device |
//! | `errno` | the negative errno number, as `fs` errors carry it |
//! | `key` | the key the error is about, or `undefined` |
//! | `backend` | the backend that failed, or `undefined` |
//! | `operation` | the operation (`get`, `put`, ...), or `undefined` |
//! | `kind` | the core kind (`NotFound`, `Config`, ...) |
//! | `retryable` | whether trying again may succeed |
//!
//! The message starts with the code, then the core error's own text, which
//! names the key, the backend and what to do.
//!
//! Backends written in JavaScript go the other way: an error they throw is
//! read back through [`kind_of_code`].

use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{Env, JsValue, Status};
use tierfs_core::{Error, ErrorKind};

/// Node's `err.code` for a core error kind, following the design contract's
/// error table (configuration errors are `EINVAL`), with the kind's name for
/// `err.kind`. The one mapping of `ErrorKind` in this crate.
pub fn describe(kind: ErrorKind) -> (&'static str, &'static str) {
    // `ErrorKind` is `#[non_exhaustive]` in core, so a crate outside core
    // cannot match it exhaustively: every kind core has today is listed, and
    // a kind added later reads as an I/O failure until it is listed here.
    match kind {
        ErrorKind::NotFound => ("ENOENT", "NotFound"),
        ErrorKind::PermissionDenied => ("EACCES", "PermissionDenied"),
        ErrorKind::InvalidKey => ("EINVAL", "InvalidKey"),
        ErrorKind::InvalidInput => ("EINVAL", "InvalidInput"),
        ErrorKind::Config => ("EINVAL", "Config"),
        ErrorKind::AlreadyExists => ("EEXIST", "AlreadyExists"),
        ErrorKind::Unsupported => ("ENOTSUP", "Unsupported"),
        ErrorKind::Unavailable => ("EIO", "Unavailable"),
        ErrorKind::Conflict => ("ESTALE", "Conflict"),
        ErrorKind::QuotaExceeded => ("EDQUOT", "QuotaExceeded"),
        _ => ("EIO", "Unavailable"),
    }
}

/// Node's `err.code` for a core error kind (see [`describe`]).
pub fn code(kind: ErrorKind) -> &'static str {
    describe(kind).0
}

/// The errno number Node puts in `err.errno` (negated) for each code.
fn errno(code: &str) -> i32 {
    match code {
        "ENOENT" => 2,
        "EACCES" => 13,
        "EINVAL" => 22,
        "EEXIST" => 17,
        "ENOTSUP" => 95,
        "ENOSPC" => 28,
        "ESTALE" => 116,
        "EDQUOT" => 122,
        _ => 5, // EIO
    }
}

/// The core kind for an `err.code` thrown by a JavaScript backend; codes
/// outside the table (and errors without a code) are `Unavailable`.
pub fn kind_of_code(code: Option<&str>) -> ErrorKind {
    match code {
        Some("ENOENT") => ErrorKind::NotFound,
        Some("EACCES") | Some("EPERM") => ErrorKind::PermissionDenied,
        Some("EINVAL") => ErrorKind::InvalidInput,
        Some("EEXIST") => ErrorKind::AlreadyExists,
        Some("ENOTSUP") | Some("EOPNOTSUPP") => ErrorKind::Unsupported,
        Some("ESTALE") => ErrorKind::Conflict,
        Some("EDQUOT") => ErrorKind::QuotaExceeded,
        _ => ErrorKind::Unavailable,
    }
}

/// The JavaScript `Error` for `err`, wrapped so that returning it from a
/// binding rejects the promise (or throws) with that very object.
pub fn to_js(env: &Env, err: &Error) -> napi::Error {
    let (code, kind) = describe(err.kind());
    // A full device keeps its kind but reads as Node's `fs` says it.
    let code = if err.is_out_of_space() { "ENOSPC" } else { code };
    let message = format!("{code}: {err}");
    build(env, err, code, kind, &message)
        .unwrap_or_else(|_| napi::Error::new(Status::GenericFailure, message))
}

fn build(env: &Env, err: &Error, code: &str, kind: &str, message: &str) -> napi::Result<napi::Error> {
    let mut obj: Object<'_> = env.create_error(napi::Error::new(Status::GenericFailure, message))?;
    obj.set_named_property("code", code)?;
    obj.set_named_property("errno", -errno(code))?;
    obj.set_named_property("kind", kind)?;
    // Absent context stays `undefined`, as in Node's `fs` errors.
    if let Some(key) = err.key() {
        obj.set_named_property("key", key)?;
    }
    if let Some(backend) = err.backend() {
        obj.set_named_property("backend", backend)?;
    }
    if let Some(operation) = err.operation() {
        obj.set_named_property("operation", operation)?;
    }
    obj.set_named_property("retryable", err.is_retryable())?;
    Ok(napi::Error::from(obj.to_unknown()))
}

/// A core error for a bad argument (`EINVAL`).
pub fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code() {
        let table = [
            (ErrorKind::NotFound, "ENOENT"),
            (ErrorKind::PermissionDenied, "EACCES"),
            (ErrorKind::InvalidKey, "EINVAL"),
            (ErrorKind::InvalidInput, "EINVAL"),
            (ErrorKind::AlreadyExists, "EEXIST"),
            (ErrorKind::Unsupported, "ENOTSUP"),
            (ErrorKind::Unavailable, "EIO"),
            (ErrorKind::Config, "EINVAL"),
            (ErrorKind::Conflict, "ESTALE"),
            (ErrorKind::QuotaExceeded, "EDQUOT"),
        ];
        for (kind, expected) in table {
            assert_eq!(code(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn codes_from_javascript_round_trip() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::AlreadyExists,
            ErrorKind::Unsupported,
            ErrorKind::Unavailable,
            ErrorKind::Conflict,
            ErrorKind::QuotaExceeded,
        ] {
            assert_eq!(kind_of_code(Some(code(kind))), kind);
        }
        assert_eq!(kind_of_code(Some("EINVAL")), ErrorKind::InvalidInput);
        assert_eq!(kind_of_code(None), ErrorKind::Unavailable);
        assert_eq!(kind_of_code(Some("ECONNRESET")), ErrorKind::Unavailable);
    }
}
