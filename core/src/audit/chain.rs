//! The keyed hash chain: each line is sealed with HMAC-SHA-256 under a
//! secret key, over its exact bytes, which include the previous line's
//! seal. Without the key nobody can write a line that verifies, so editing,
//! removing or inserting records, and recomputing the chain after, shows.
//!
//! The key lives in a file of its own (`[audit] key_file`, default the
//! log's path with `.key` added): 32 random bytes written as 64 hex digits,
//! created `0600` with the log when missing. Keep a copy where the log's
//! host cannot change it to verify a log you do not trust the host with.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorKind, Result};
use crate::private_files;

/// Shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 16;
/// Length of a key TierFS generates, in bytes.
const NEW_KEY_BYTES: usize = 32;

/// The secret key of an audit log.
#[derive(Clone)]
pub struct ChainKey {
    mac: Hmac<Sha256>,
    path: PathBuf,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ChainKey {
    /// Reads the key in `path`, refusing a file other users may read.
    pub fn load(path: &Path) -> Result<ChainKey> {
        private_files::check_private(path, "the audit key file", false)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "; it is created with a new log, and a log written with it cannot be verified without it"
            } else {
                ""
            };
            Error::io(format!("cannot read the audit key file {}{hint}", path.display()), e)
        })?;
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() >= MIN_KEY_BYTES).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the audit key file {} must hold a key of at least {MIN_KEY_BYTES} bytes as hex digits \
                     (for example `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`)",
                    path.display()
                ),
            )
        })?;
        Ok(ChainKey::from_bytes(&bytes, path))
    }

    /// Creates a new random key in `path` (`0600`), failing if it exists.
    pub fn create(path: &Path) -> Result<ChainKey> {
        let io = |e| Error::io(format!("cannot create the audit key file {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_files::create_dir_private(dir).map_err(io)?;
        }
        let mut bytes = [0u8; NEW_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::new(ErrorKind::Unavailable, format!("no randomness for a new audit key: {e}"))
        })?;
        let mut file = private_files::create_private(path).map_err(io)?;
        file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(ChainKey::from_bytes(&bytes, path))
    }

    /// A key from its bytes (`path` names it in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> ChainKey {
        let mac = Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes keys of any length");
        ChainKey { mac, path: path.to_owned() }
    }

    /// The file the key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seal of `bytes`, as 64 hex digits.
    pub fn seal(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `hash` (64 hex digits) is the seal of `bytes`, compared in
    /// constant time.
    pub fn verify(&self, bytes: &[u8], hash: &str) -> bool {
        let Ok(expected) = hex::decode(hash) else { return false };
        let mut mac = self.mac.clone();
        mac.update(bytes);
        mac.verify_slice(&expected).is_ok()
    }
}

/// A random id for a new log, as 32 hex digits.
pub fn new_log_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(ErrorKind::Unavailable, format!("no randomness for a new audit log id: {e}"))
    })?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_loads_and_seals_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/audit.key");
        let key = ChainKey::create(&path).unwrap();
        let again = ChainKey::load(&path).unwrap();
        let seal = key.seal(b"line");
        assert_eq!(seal.len(), 64);
        assert!(again.verify(b"line", &seal));
        assert!(!again.verify(b"line!", &seal));
        assert!(!again.verify(b"line", "zz"));
        assert!(ChainKey::create(&path).is_err(), "an existing key is never replaced");
        let other = ChainKey::from_bytes(&[7; 32], &path);
        assert!(!other.verify(b"line", &seal));
    }

    #[test]
    fn bad_key_files_are_refused_clearly() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "abcd\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = ChainKey::load(&path).unwrap_err();
        assert!(e.to_string().contains("at least 16 bytes"), "{e}");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ChainKey::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let e = ChainKey::load(&dir.path().join("missing.key")).unwrap_err();
        assert!(e.to_string().contains("cannot read the audit key file"), "{e}");
    }
}
