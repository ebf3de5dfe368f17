//! The seal: where the log ends, kept apart from the log.
//!
//! After every write of records (each record with `flush = "record"`, each
//! buffer otherwise, at least once a second), at rotation and at close, the
//! writer records the log's id, the first record still kept, and the last
//! record written with its hash, sealed with the log's key, in the seal
//! file (`[audit] seal_file`, default the log's path with `.seal` added,
//! always `0600`). Removing records from the end of the log, or whole
//! files, then shows: the log ends before its seal.
//!
//! The file holds two slots of [`SLOT`] bytes written in turn, so a write
//! cut short by a crash leaves the other, one write older, intact; the
//! writer seals both again when it reopens the log, and [`read`] refuses a
//! file with a spoiled slot (spoiling the newer slot would otherwise roll
//! the seal back by one write).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::ChainKey;
use crate::error::{Error, Result};
use crate::private_files;

/// Bytes per slot.
const SLOT: usize = 512;

/// Where a log ended when it was last sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The log's id.
    pub log: String,
    /// The first record kept (older files rotated away end before it).
    pub first_seq: u64,
    /// The last record written.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// When the seal was written (RFC 3339).
    pub time: String,
    /// HMAC-SHA-256 of the fields above under the log's key.
    pub mac: String,
}

impl Seal {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "tierfs-audit-seal\n{}\n{}\n{}\n{}\n{}",
            self.log, self.first_seq, self.seq, self.hash, self.time
        )
        .into_bytes()
    }

    /// A seal of these fields under `key`.
    pub fn new(key: &ChainKey, log: &str, first_seq: u64, seq: u64, hash: &str, time: String) -> Seal {
        let mut seal =
            Seal { log: log.to_owned(), first_seq, seq, hash: hash.to_owned(), time, mac: String::new() };
        seal.mac = key.seal(&seal.signed_bytes());
        seal
    }

    /// Whether the seal was made with `key` and not changed since.
    pub fn is_genuine(&self, key: &ChainKey) -> bool {
        key.verify(&self.signed_bytes(), &self.mac)
    }
}

/// What a seal file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealState {
    /// No seal file.
    Missing,
    /// The newest genuine seal.
    Sealed(Seal),
    /// A file with no genuine seal in it (edited, or another key's).
    Forged,
}

/// Reads the newest genuine seal of `path`.
pub fn read(path: &Path, key: &ChainKey) -> Result<SealState> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SealState::Missing),
        Err(e) => return Err(Error::io(format!("cannot read the audit seal {}", path.display()), e)),
    };
    // Every slot written must be genuine: rolling the seal back by spoiling
    // the newer slot would otherwise hide the last record's removal. (A
    // crash while sealing spoils one too; the writer seals both slots again
    // when it reopens the log.)
    let mut newest: Option<Seal> = None;
    for slot in bytes.chunks(SLOT).map(<[u8]>::trim_ascii).filter(|s| !s.iter().all(|b| *b == 0)) {
        match serde_json::from_slice::<Seal>(slot) {
            Ok(seal) if seal.is_genuine(key) => {
                if newest.as_ref().is_none_or(|n| seal.seq >= n.seq) {
                    newest = Some(seal);
                }
            }
            _ => return Ok(SealState::Forged),
        }
    }
    Ok(newest.map_or(SealState::Forged, SealState::Sealed))
}

/// The seal file, open for writing.
#[derive(Debug)]
pub struct SealFile {
    path: PathBuf,
    file: File,
    next_slot: u64,
}

impl SealFile {
    /// Opens (or creates, `0600`) the seal file.
    pub fn open(path: &Path) -> Result<SealFile> {
        let io = |e| Error::io(format!("cannot open the audit seal {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_files::create_dir_private(dir).map_err(io)?;
        }
        let file =
            private_files::private_options().read(true).write(true).create(true).open(path).map_err(io)?;
        Ok(SealFile { path: path.to_owned(), file, next_slot: 0 })
    }

    /// Writes `seal` over the older slot; with `sync`, makes it durable.
    pub fn write(&mut self, seal: &Seal, sync: bool) -> std::io::Result<()> {
        let mut slot = serde_json::to_vec(seal).expect("seals serialize");
        if slot.len() >= SLOT {
            return Err(std::io::Error::other("the seal is longer than its slot"));
        }
        slot.resize(SLOT - 1, b' ');
        slot.push(b'\n');
        self.file.write_all_at(&slot, (self.next_slot % 2) * SLOT as u64)?;
        self.next_slot += 1;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_genuine_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let key = ChainKey::from_bytes(&[1; 32], &dir.path().join("k"));
        let path = dir.path().join("audit.log.seal");
        assert_eq!(read(&path, &key).unwrap(), SealState::Missing);
        let mut file = SealFile::open(&path).unwrap();
        let hash = "ab".repeat(32);
        for seq in 1..=5 {
            file.write(&Seal::new(&key, "id", 0, seq, &hash, "t".into()), false).unwrap();
        }
        let SealState::Sealed(seal) = read(&path, &key).unwrap() else { panic!("no seal") };
        assert_eq!(seal.seq, 5);
        // A spoiled slot (a crash while sealing, or a rollback) is refused;
        // writing again mends it.
        let bytes = std::fs::read(&path).unwrap();
        let newest =
            bytes.chunks(SLOT).position(|s| String::from_utf8_lossy(s).contains("\"seq\":5")).unwrap();
        file.file.write_all_at(b"garbage", (newest * SLOT) as u64).unwrap();
        assert_eq!(read(&path, &key).unwrap(), SealState::Forged);
        file.write(&Seal::new(&key, "id", 0, 6, &hash, "t".into()), false).unwrap();
        file.write(&Seal::new(&key, "id", 0, 6, &hash, "t".into()), false).unwrap();
        let SealState::Sealed(seal) = read(&path, &key).unwrap() else { panic!("no seal") };
        assert_eq!(seal.seq, 6);
        // Another key's seals, or edited ones, are not genuine.
        let other = ChainKey::from_bytes(&[2; 32], &dir.path().join("k"));
        assert_eq!(read(&path, &other).unwrap(), SealState::Forged);
        let edited =
            String::from_utf8(std::fs::read(&path).unwrap()).unwrap().replace("\"seq\":6", "\"seq\":9");
        std::fs::write(&path, edited).unwrap();
        assert_eq!(read(&path, &key).unwrap(), SealState::Forged);
    }
}
