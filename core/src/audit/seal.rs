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
//! The file holds two slots of 512 bytes, written in turn, each seal
//! numbered (`count`) one above the last: a write cut short by a crash
//! leaves the other slot intact, and the writer seals both again when it
//! reopens the log. [`read`] takes a seal only from two genuine slots with
//! consecutive numbers: spoiling, truncating or copying a slot (to roll
//! the seal back by one write) shows.

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
    /// How many seals were written before this one (one more each write).
    pub count: u64,
    /// HMAC-SHA-256 of the fields above under the log's key.
    pub mac: String,
}

impl Seal {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "tierfs-audit-seal\n{}\n{}\n{}\n{}\n{}\n{}",
            self.log, self.first_seq, self.seq, self.hash, self.time, self.count
        )
        .into_bytes()
    }

    /// A seal of these fields under `key` (numbered when written).
    pub fn new(key: &ChainKey, log: &str, first_seq: u64, seq: u64, hash: &str, time: String) -> Seal {
        let mut seal = Seal {
            log: log.to_owned(),
            first_seq,
            seq,
            hash: hash.to_owned(),
            time,
            count: 0,
            mac: String::new(),
        };
        seal.sign(key, 0);
        seal
    }

    fn sign(&mut self, key: &ChainKey, count: u64) {
        self.count = count;
        self.mac = key.seal(&self.signed_bytes());
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

/// Reads the seal of `path`: the newer of its two slots, when both are
/// genuine and numbered one apart; otherwise [`SealState::Forged`].
pub fn read(path: &Path, key: &ChainKey) -> Result<SealState> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SealState::Missing),
        Err(e) => return Err(Error::io(format!("cannot read the audit seal {}", path.display()), e)),
    };
    Ok(match pair(&bytes, key) {
        Some((_, newer)) => SealState::Sealed(newer),
        None => SealState::Forged,
    })
}

/// The two genuine slots of a seal file, older first.
fn pair(bytes: &[u8], key: &ChainKey) -> Option<(Seal, Seal)> {
    if bytes.len() != 2 * SLOT {
        return None;
    }
    let slot = |i: usize| {
        serde_json::from_slice::<Seal>(bytes[i * SLOT..(i + 1) * SLOT].trim_ascii())
            .ok()
            .filter(|s| s.is_genuine(key))
    };
    let (a, b) = (slot(0)?, slot(1)?);
    let (older, newer) = if a.count < b.count { (a, b) } else { (b, a) };
    (newer.count == older.count + 1).then_some((older, newer))
}

/// The seal file, open for writing.
#[derive(Debug)]
pub struct SealFile {
    path: PathBuf,
    file: File,
    /// The number of the next seal written (its slot is `count % 2`).
    count: u64,
}

impl SealFile {
    /// Opens (or creates, `0600`) the seal file; numbering goes on from
    /// its seal if it holds a genuine one.
    pub fn open(path: &Path, key: &ChainKey) -> Result<SealFile> {
        let io = |e| Error::io(format!("cannot open the audit seal {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_files::create_dir_private(dir).map_err(io)?;
        }
        let file =
            private_files::private_options().read(true).write(true).create(true).open(path).map_err(io)?;
        let existing = std::fs::read(path).map_err(io)?;
        let count = pair(&existing, key).map_or(0, |(_, newer)| newer.count + 1);
        Ok(SealFile { path: path.to_owned(), file, count })
    }

    /// Writes `seal`, numbered next, over the older slot; with `sync`,
    /// makes it durable.
    pub fn write(&mut self, key: &ChainKey, seal: &Seal, sync: bool) -> std::io::Result<()> {
        let mut seal = seal.clone();
        seal.sign(key, self.count);
        let mut slot = serde_json::to_vec(&seal).expect("seals serialize");
        if slot.len() >= SLOT {
            return Err(std::io::Error::other("the seal is longer than its slot"));
        }
        slot.resize(SLOT - 1, b' ');
        slot.push(b'\n');
        self.file.write_all_at(&slot, (self.count % 2) * SLOT as u64)?;
        self.count += 1;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes `seal` into both slots (a new or mended file).
    pub fn write_both(&mut self, key: &ChainKey, seal: &Seal, sync: bool) -> std::io::Result<()> {
        self.write(key, seal, false)?;
        self.write(key, seal, sync)
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
    fn only_two_consecutive_genuine_slots_make_a_seal() {
        let dir = tempfile::tempdir().unwrap();
        let key = ChainKey::from_bytes(&[1; 32], &dir.path().join("k"));
        let path = dir.path().join("audit.log.seal");
        assert_eq!(read(&path, &key).unwrap(), SealState::Missing);
        let mut file = SealFile::open(&path, &key).unwrap();
        let hash = "ab".repeat(32);
        let at = |seq| Seal::new(&key, "id", 0, seq, &hash, "t".into());
        file.write(&key, &at(1), false).unwrap();
        // One slot written is not a seal yet.
        assert_eq!(read(&path, &key).unwrap(), SealState::Forged);
        for seq in 2..=5 {
            file.write(&key, &at(seq), false).unwrap();
        }
        let SealState::Sealed(seal) = read(&path, &key).unwrap() else { panic!("no seal") };
        assert_eq!((seal.seq, seal.count), (5, 4));
        // Numbering goes on after a reopen.
        let mut file = SealFile::open(&path, &key).unwrap();
        file.write(&key, &at(6), false).unwrap();
        let SealState::Sealed(seal) = read(&path, &key).unwrap() else { panic!("no seal") };
        assert_eq!((seal.seq, seal.count), (6, 5));
        let pristine = std::fs::read(&path).unwrap();
        // Spoiling the newer slot, copying the older over it, or cutting
        // the file would each roll the seal back: each shows instead.
        let newer =
            pristine.chunks(SLOT).position(|s| String::from_utf8_lossy(s).contains("\"seq\":6")).unwrap();
        let older = 1 - newer;
        let mut spoiled = pristine.clone();
        spoiled[newer * SLOT..newer * SLOT + 7].copy_from_slice(b"garbage");
        let mut copied = pristine.clone();
        copied.copy_within(older * SLOT..(older + 1) * SLOT, newer * SLOT);
        for (how, bytes) in [("spoiled", spoiled), ("copied", copied), ("cut", pristine[..SLOT].to_vec())] {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(read(&path, &key).unwrap(), SealState::Forged, "{how}");
        }
        // Another key's seals, or edited ones, are not genuine.
        std::fs::write(&path, &pristine).unwrap();
        let other = ChainKey::from_bytes(&[2; 32], &dir.path().join("k"));
        assert_eq!(read(&path, &other).unwrap(), SealState::Forged);
        let edited = String::from_utf8(pristine).unwrap().replace("\"seq\":6", "\"seq\":9");
        std::fs::write(&path, edited).unwrap();
        assert_eq!(read(&path, &key).unwrap(), SealState::Forged);
        // Writing both slots mends the file.
        let mut file = SealFile::open(&path, &key).unwrap();
        file.write_both(&key, &at(7), false).unwrap();
        let SealState::Sealed(seal) = read(&path, &key).unwrap() else { panic!("no seal") };
        assert_eq!(seal.seq, 7);
    }
}
