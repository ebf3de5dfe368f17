//! Arbitrary UTF-8 text -> `Config::parse(text, None)`.
//!
//! It must never panic; a refusal must be a `Config` error with a message,
//! and an accepted configuration must pass `validate()` again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tierfs_core::{Config, ErrorKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, None) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                panic!("Config::parse accepted {text:?} but validate() refuses it: {e}");
            }
            assert!(config.source.is_none(), "source set without a file");
            assert!(!config.backends.is_empty(), "accepted a configuration with no backend");
            // A clone is the same configuration and validates the same way.
            let copy = config.clone();
            assert_eq!(copy, config);
            copy.validate().expect("a clone of a valid configuration is valid");
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "Config::parse({text:?}) failed with {e}");
            assert!(!e.message().trim().is_empty(), "empty error message for {text:?}");
            assert!(!e.to_string().trim().is_empty(), "empty Display for {text:?}");
        }
    }
});
