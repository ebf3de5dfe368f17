//! Keys to object paths and back. Each segment is percent-encoded where S3
//! advises against a character (object_store's rules), so any valid key
//! round-trips exactly.

use object_store::path::{Path, PathPart};

use crate::key::Key;

/// The object path of `key` under `prefix` (segments without slashes).
pub(super) fn to_path(prefix: &[String], key: &str) -> Path {
    prefix.iter().map(|p| PathPart::from(p.as_str())).chain(key.split('/').map(PathPart::from)).collect()
}

/// The object path of a listing prefix (`""`, `a/`, or a partial `a/fo`):
/// the directory part and the trailing partial segment, if any.
pub(super) fn dir_and_partial(prefix: &[String], list_prefix: &str) -> (Path, String) {
    let (dir, partial) = match list_prefix.rfind('/') {
        Some(i) => (&list_prefix[..i], &list_prefix[i + 1..]),
        None => ("", list_prefix),
    };
    let segments = prefix.iter().map(String::as_str).chain(dir.split('/').filter(|s| !s.is_empty()));
    (segments.map(PathPart::from).collect(), partial.to_owned())
}

/// The key of an object path, with the backend prefix removed and each
/// segment decoded; `None` for objects outside the prefix or not valid keys.
pub(super) fn to_key(prefix: &[String], path: &Path) -> Option<String> {
    let mut parts = path.parts();
    for p in prefix {
        if parts.next()?.as_ref() != PathPart::from(p.as_str()).as_ref() {
            return None;
        }
    }
    let decoded: Vec<String> = parts.map(|part| percent_decode(part.as_ref())).collect::<Option<Vec<_>>>()?;
    let key = decoded.join("/");
    Key::new(key.clone()).ok().map(|_| key)
}

/// `s` with every byte but ASCII letters, digits and `keep` as `%XX`.
pub(super) fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let prefix = vec!["tenant".to_owned()];
        for key in ["a", "a/b.txt", "odd {chars}/100%/\"q\"/#x", "ünïcödé/ключ", "sp ace/tab\tx"] {
            let path = to_path(&prefix, key);
            assert_eq!(to_key(&prefix, &path).as_deref(), Some(key), "{path}");
        }
        assert_eq!(to_key(&prefix, &to_path(&["other".into()], "a")), None);
    }

    #[test]
    fn listing_prefixes_split() {
        let (dir, partial) = dir_and_partial(&[], "a/b/fo");
        assert_eq!((dir.as_ref(), partial.as_str()), ("a/b", "fo"));
        let (dir, partial) = dir_and_partial(&["p".into()], "");
        assert_eq!((dir.as_ref(), partial.as_str()), ("p", ""));
        let (dir, partial) = dir_and_partial(&[], "a/");
        assert_eq!((dir.as_ref(), partial.as_str()), ("a", ""));
    }
}
