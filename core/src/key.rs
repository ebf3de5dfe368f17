//! Keys: `/`-separated UTF-8 paths, validated once at the edge.
//!
//! The rules (`docs/design.md`, "Keys"): a key is at most [`MAX_KEY_LEN`] bytes,
//! made of non-empty segments of at most [`MAX_SEGMENT_LEN`] bytes, none of
//! which is `.` or `..`, with no NUL and no leading `/`. A key that breaks a
//! rule is refused with [`ErrorKind::InvalidKey`](crate::ErrorKind); it is never
//! rewritten into a different key.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use crate::error::{Error, ErrorDetail, ErrorKind, Result};

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest segment, in bytes (POSIX `NAME_MAX`).
pub const MAX_SEGMENT_LEN: usize = 255;

/// A validated storage key such as `photos/2024/cat.jpg`.
///
/// The grammar (`docs/design.md`, "Keys"): at most [`MAX_KEY_LEN`] bytes of
/// UTF-8, made of non-empty `/`-separated segments of at most
/// [`MAX_SEGMENT_LEN`] bytes, none of which is `.` or `..`, with no NUL and
/// no leading `/`. A key that breaks a rule is refused with
/// [`ErrorKind::InvalidKey`](crate::ErrorKind); it is never rewritten into a
/// different key. Listing prefixes follow [`validate_prefix`].
///
/// ```
/// use tierfs_core::Key;
///
/// let key = Key::new("photos/2024/cat.jpg").unwrap();
/// assert_eq!(key.as_str(), "photos/2024/cat.jpg");
/// assert_eq!(key.parent(), Some("photos/2024"));
/// assert_eq!(key.file_name(), "cat.jpg");
///
/// assert!(Key::new("a//b").is_err());
/// assert!(Key::new("allowed/../secret").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `key` and wraps it.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        validate_key(&key)?;
        Ok(Key(key))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the key, returning its string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The key without its last segment, or `None` for a top-level key.
    pub fn parent(&self) -> Option<&str> {
        self.0.rfind('/').map(|i| &self.0[..i])
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// Appends one segment (`self/segment`), validating the result.
    pub fn join(&self, segment: &str) -> Result<Key> {
        Key::new(format!("{}/{}", self.0, segment))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        Key::new(value)
    }
}

impl TryFrom<String> for Key {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Key::new(value)
    }
}

fn invalid(key: &str, why: &str) -> Error {
    Error::new(ErrorKind::InvalidKey, why).with_key(key)
}

/// Checks `key` against every rule of the key grammar.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "the key is empty; name an object such as `dir/file`"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(
            key,
            &format!("the key is {} bytes long; the limit is {MAX_KEY_LEN}", key.len()),
        )
        .with_detail(ErrorDetail::NameTooLong { len: key.len(), limit: MAX_KEY_LEN }));
    }
    if key.starts_with('/') {
        return Err(invalid(key, "the key starts with `/`; keys are relative, drop the leading slash"));
    }
    if key.as_bytes().contains(&0) {
        return Err(invalid(key, "the key contains a NUL byte"));
    }
    for segment in key.split('/') {
        validate_segment(key, segment)?;
    }
    Ok(())
}

fn validate_segment(key: &str, segment: &str) -> Result<()> {
    match segment {
        "" => Err(invalid(key, "the key has an empty segment (`//` or a trailing `/`)")),
        "." | ".." => Err(invalid(
            key,
            &format!("the key has a `{segment}` segment; spell the path without relative parts"),
        )),
        s if s.len() > MAX_SEGMENT_LEN => {
            Err(invalid(key, &format!("a segment is {} bytes long; the limit is {MAX_SEGMENT_LEN}", s.len()))
                .with_detail(ErrorDetail::NameTooLong { len: s.len(), limit: MAX_SEGMENT_LEN }))
        }
        _ => Ok(()),
    }
}

/// Checks a listing prefix: empty, or a key prefix optionally ending in `/`
/// (`a/b/` lists inside `a/b`, `a/fo` lists keys starting with `a/fo`).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed).map_err(|e| {
        let error = Error::new(ErrorKind::InvalidKey, format!("invalid list prefix: {}", e.message()))
            .with_key(prefix);
        match e.detail() {
            Some(detail) => error.with_detail(detail),
            None => error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "a/b", "a/b/c.txt", "é/ü", ".hidden", "a/.b", "...", "a b"] {
            Key::new(k).unwrap_or_else(|e| panic!("{k:?}: {e}"));
        }
        Key::new("x".repeat(255)).unwrap();
        Key::new(vec!["y".repeat(255); 4].join("/")).unwrap();
    }

    #[test]
    fn rejects_every_invalid_form() {
        let long_segment = "x".repeat(256);
        let long_key = vec!["y".repeat(200); 6].join("/");
        for k in ["", "/a", "a//b", "a/", "./a", "a/./b", "a/..", "../a", "a\0b", "/"] {
            let e = Key::new(k).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidKey, "{k:?}");
        }
        assert_eq!(Key::new(long_segment).unwrap_err().kind(), ErrorKind::InvalidKey);
        assert_eq!(Key::new(long_key).unwrap_err().kind(), ErrorKind::InvalidKey);
    }

    #[test]
    fn prefixes() {
        for p in ["", "a", "a/", "a/b/", "a/fo"] {
            validate_prefix(p).unwrap();
        }
        for p in ["/", "a//", "../", "a/../"] {
            assert!(validate_prefix(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        let k = Key::new("a").unwrap();
        assert_eq!(k.parent(), None);
        assert_eq!(k.file_name(), "a");
        assert_eq!(Key::new("a/b").unwrap().join("c").unwrap().as_str(), "a/b/c");
    }
}
