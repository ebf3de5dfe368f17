//! The one place where errors become errno values.
//!
//! Every [`tierfs_core::ErrorKind`] is mapped here, exhaustively; the file
//! system layer speaks [`FsError`], which carries the errno, a message and
//! the core error it came from (if any), and the FUSE adapter only reads
//! [`FsError::errno`].

use std::fmt;

use tierfs_core::{Error, ErrorDetail, ErrorKind};

/// The errno for a core error kind.
///
/// | kind | errno | why |
/// |---|---|---|
/// | `NotFound` | `ENOENT` | the key does not exist |
/// | `PermissionDenied` | `EACCES` | the access policy refused (and audited) it |
/// | `InvalidKey` | `EINVAL` (`ENAMETOOLONG` for over-long keys) | the path breaks the key grammar |
/// | `InvalidInput` | `EINVAL` | a bad argument (a range, a setting) |
/// | `AlreadyExists` | `EEXIST` | a conditional create found the key |
/// | `Unsupported` | `ENOTSUP` | the backend cannot do it |
/// | `Unavailable` | `ENOSPC` when [`Error::is_out_of_space`] | the backend's device is full or its quota spent |
/// | `Unavailable` | `EIO` | the backend is down or failed at I/O, retries spent |
/// | `Config` | `EIO` | a configuration problem reached an operation (a reload failed half-way) |
///
/// `ErrorKind` is `#[non_exhaustive]`, so the compiler requires one more
/// arm: a kind added to core after this crate was written maps to `EIO`
/// (an I/O error is the only answer a caller can always handle) until it is
/// given its own row above.
pub fn errno_of(error: &Error) -> i32 {
    match error.kind() {
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::PermissionDenied => libc::EACCES,
        ErrorKind::InvalidKey if is_too_long(error) => libc::ENAMETOOLONG,
        ErrorKind::InvalidKey => libc::EINVAL,
        ErrorKind::InvalidInput => libc::EINVAL,
        ErrorKind::AlreadyExists => libc::EEXIST,
        ErrorKind::Unsupported => libc::ENOTSUP,
        ErrorKind::Unavailable if error.is_out_of_space() => libc::ENOSPC,
        ErrorKind::Unavailable => libc::EIO,
        ErrorKind::Config => libc::EIO,
        // The value changed under a conditional update more often than the
        // store retries: stale, as NFS says of a file changed elsewhere.
        ErrorKind::Conflict => libc::ESTALE,
        ErrorKind::QuotaExceeded => libc::EDQUOT,
        // Documented fallback for kinds added to core later (see above).
        _ => libc::EIO,
    }
}

/// Whether an `InvalidKey` error is about length (the file system layer
/// checks lengths itself before building a key, so this only catches keys
/// that grew past the limit through a parent directory).
fn is_too_long(error: &Error) -> bool {
    matches!(error.detail(), Some(ErrorDetail::NameTooLong { .. }))
}

/// An error of the file system layer: an errno for the kernel, a message
/// for the log, and the core error behind it.
pub struct FsError {
    errno: i32,
    message: String,
    source: Option<Error>,
}

/// `Result` with [`FsError`].
pub type FsResult<T> = std::result::Result<T, FsError>;

impl FsError {
    /// An error with `errno` and a message.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        FsError { errno, message: message.into(), source: None }
    }

    /// `ENOENT`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        FsError::new(libc::ENOENT, format!("{what}: no such file or directory"))
    }

    /// The errno to give the kernel.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The core error behind this one, if any.
    pub fn core(&self) -> Option<&Error> {
        self.source.as_ref()
    }
}

impl From<Error> for FsError {
    fn from(error: Error) -> Self {
        FsError { errno: errno_of(&error), message: error.to_string(), source: Some(error) }
    }
}

impl From<std::io::Error> for FsError {
    fn from(error: std::io::Error) -> Self {
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        FsError::new(errno, format!("spool I/O failed: {error}"))
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)
    }
}

impl fmt::Debug for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsError").field("errno", &self.errno).field("message", &self.message).finish()
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_errno() {
        let cases = [
            (ErrorKind::NotFound, libc::ENOENT),
            (ErrorKind::PermissionDenied, libc::EACCES),
            (ErrorKind::InvalidKey, libc::EINVAL),
            (ErrorKind::InvalidInput, libc::EINVAL),
            (ErrorKind::AlreadyExists, libc::EEXIST),
            (ErrorKind::Unsupported, libc::ENOTSUP),
            (ErrorKind::Unavailable, libc::EIO),
            (ErrorKind::Config, libc::EIO),
            (ErrorKind::Conflict, libc::ESTALE),
            (ErrorKind::QuotaExceeded, libc::EDQUOT),
        ];
        for (kind, errno) in cases {
            assert_eq!(errno_of(&Error::new(kind, "x")), errno, "{kind:?}");
        }
    }

    #[test]
    fn a_name_too_long_is_enametoolong_by_its_detail_not_its_words() {
        let long = tierfs_core::Key::new("d/".to_owned() + &"x".repeat(256)).unwrap_err();
        assert_eq!(errno_of(&long), libc::ENAMETOOLONG);
        let long_prefix = tierfs_core::validate_prefix(&"y/".repeat(600)).unwrap_err();
        assert_eq!(errno_of(&long_prefix), libc::ENAMETOOLONG);
        // A message that merely mentions length is not the detail.
        let worded = Error::new(ErrorKind::InvalidKey, "the key is too long");
        assert_eq!(errno_of(&worded), libc::EINVAL);
    }

    #[test]
    fn a_full_device_is_enospc() {
        let full = Error::io("cannot write", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(errno_of(&full), libc::ENOSPC);
        let quota = Error::io("cannot write", std::io::Error::from_raw_os_error(libc::EDQUOT));
        assert_eq!(errno_of(&quota), libc::ENOSPC);
    }

    #[test]
    fn long_keys_are_enametoolong() {
        let err = tierfs_core::Key::new("a".repeat(300)).unwrap_err();
        assert_eq!(errno_of(&err), libc::ENAMETOOLONG, "{err}");
    }

    #[test]
    fn fs_error_keeps_the_core_error() {
        let e = FsError::from(Error::not_found("a/b"));
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.core().map(Error::kind), Some(ErrorKind::NotFound));
    }
}
