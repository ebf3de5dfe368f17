//! Arbitrary bytes -> `Key::new` and `validate_prefix`.
//!
//! Neither may panic, and whatever they accept is checked here against the
//! key grammar of docs/design.md ("Keys"), written out independently of `core/src/key.rs`,
//! so that a validator that lets a bad key through is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tierfs_core::validate_prefix;
use tierfs_core::{ErrorKind, Key};

const MAX_KEY_LEN: usize = 1024;
const MAX_SEGMENT_LEN: usize = 255;

/// The key grammar, restated: `None` when `s` is a valid key, else why not.
fn grammar_violation(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("empty key");
    }
    if s.len() > MAX_KEY_LEN {
        return Some("key longer than 1024 bytes");
    }
    if s.starts_with('/') {
        return Some("leading '/'");
    }
    if s.bytes().any(|b| b == 0) {
        return Some("NUL byte");
    }
    for segment in s.split('/') {
        match segment {
            "" => return Some("empty segment"),
            "." => return Some("'.' segment"),
            ".." => return Some("'..' segment"),
            seg if seg.len() > MAX_SEGMENT_LEN => return Some("segment longer than 255 bytes"),
            _ => {}
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // Key::new: accepted exactly when the grammar says so.
    match Key::new(text) {
        Ok(key) => {
            if let Some(why) = grammar_violation(key.as_str()) {
                panic!("Key::new accepted {text:?}, which breaks the grammar: {why}");
            }
            assert_eq!(key.as_str(), text, "Key::new rewrote the key");
            let again = Key::new(key.as_str()).expect("an accepted key must be accepted again");
            assert_eq!(again, key, "Key::new(k.as_str()) does not round-trip");
            // The accessors must agree with the string and never panic.
            let name = key.file_name();
            assert!(!name.is_empty() && !name.contains('/'), "bad file_name {name:?} of {text:?}");
            match key.parent() {
                Some(parent) => {
                    assert_eq!(format!("{parent}/{name}"), text, "parent/file_name do not rebuild {text:?}");
                    assert!(grammar_violation(parent).is_none(), "parent {parent:?} of {text:?} is no key");
                }
                None => assert_eq!(name, text),
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidKey, "Key::new({text:?}) failed with {e}");
            assert!(!e.message().is_empty(), "empty message for {text:?}");
            assert!(
                grammar_violation(text).is_some(),
                "Key::new refused {text:?}, which the grammar allows: {e}"
            );
        }
    }

    // validate_prefix: empty, or a key with at most one trailing '/'.
    let prefix_ok = text.is_empty() || grammar_violation(text.strip_suffix('/').unwrap_or(text)).is_none();
    match validate_prefix(text) {
        Ok(()) => assert!(prefix_ok, "validate_prefix accepted {text:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidKey, "validate_prefix({text:?}) failed with {e}");
            assert!(!prefix_ok, "validate_prefix refused {text:?}: {e}");
        }
    }
});
