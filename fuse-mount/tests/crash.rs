//! Crash tests of the mount: a seeded workload of ordinary file operations
//! (small files through the journal, large streamed files, preallocated
//! files, overwrites, edits in place of large files, chmod of large files,
//! deletes, renames of whole directories) runs in the mount while the
//! daemon is SIGKILLed at a random moment. After a remount, every file
//! whose `fsync` returned is present and whole with its last fsynced
//! content, nothing is torn (a file being edited in place holds its content
//! before the edit or after it), and every file of a renamed directory is
//! under exactly one of its two names.
//!
//! `TIERFS_MOUNT_CRASH_SEEDS` sets the number of seeds (default 10); each
//! prints its seed, and `TIERFS_MOUNT_CRASH_SEED=N` runs only seed N.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// xorshift64*: the workload's choices and the files' bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A file's content: pattern seed and length, then edits in place (each
/// a pattern seed and length written at an offset).
#[derive(Debug, Clone, PartialEq)]
struct Content {
    seed: u64,
    len: usize,
    edits: Vec<(usize, u64, usize)>,
}

impl Content {
    fn new(seed: u64, len: usize) -> Content {
        Content { seed, len, edits: Vec::new() }
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn bytes(content: &Content) -> Vec<u8> {
    let mut out = pattern(content.seed, content.len);
    for (offset, seed, len) in &content.edits {
        if out.len() < offset + len {
            out.resize(offset + len, 0);
        }
        out[*offset..offset + len].copy_from_slice(&pattern(*seed, *len));
    }
    out
}

/// What the workload knows is durable, and what it was doing.
#[derive(Default, Debug)]
struct Model {
    /// Files whose last `fsync` returned, with that content.
    files: BTreeMap<String, Content>,
    /// Deleted files (no directory fsync): absent, or whole with this content.
    deleted: BTreeMap<String, Content>,
    /// Renamed directories: (old name, new name, files with content).
    renamed: Vec<(String, String, BTreeMap<String, Content>)>,
    /// Paths the operation in flight touches: any state is allowed there.
    in_flight: Vec<String>,
    /// A file being edited in place: its content before and after the edit.
    editing: Option<(String, Content, Content)>,
    /// Operations completed.
    done: u64,
    /// Edits in place completed.
    edits: u64,
}

/// Writes `content` to `path` (creating or truncating) and fsyncs it;
/// with `preallocate`, extends the file to its length first (as fio,
/// download managers and `rsync --preallocate` do).
fn write_synced(path: &Path, content: &Content, preallocate: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut f = fs::File::create(path)?;
    let data = bytes(content);
    if preallocate {
        // SAFETY: a plain system call on a descriptor we own.
        let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, data.len() as i64) };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
    }
    for chunk in data.chunks(256 << 10) {
        f.write_all(chunk)?;
    }
    f.sync_all()?;
    close(f)
}

/// Runs the workload of `seed` in `root` until an operation fails (the
/// daemon is gone).
fn workload(root: &Path, seed: u64, model: &Mutex<Model>) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut dirs: Vec<String> = Vec::new();
    let mut next_dir = 0;
    for op in 0u64.. {
        if dirs.len() < 3 {
            let name = format!("d{next_dir}");
            next_dir += 1;
            fs::create_dir(root.join(&name))?;
            dirs.push(name);
        }
        let dir = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let file = format!("{dir}/f{}", rng.below(6));
        let content_seed = seed * 1_000_000 + op;
        match rng.below(30) {
            choice @ 0..=15 => {
                // Small files (through the journal) or large ones (streamed).
                let len = match choice {
                    0..=11 => 1 + rng.below(20_000) as usize,
                    _ => (1 << 20) + rng.below(3 << 20) as usize,
                };
                let content = Content::new(content_seed, len);
                model.lock().unwrap().in_flight = vec![file.clone()];
                write_synced(&root.join(&file), &content, rng.below(3) == 0)?;
                let mut m = model.lock().unwrap();
                m.files.insert(file.clone(), content);
                m.deleted.remove(&file);
            }
            24..=29 => {
                // An edit in place of a large file: a few bytes inside it and
                // some appended, then fsync (one patch, all or nothing).
                let target = {
                    let m = model.lock().unwrap();
                    let large: Vec<_> = m
                        .files
                        .iter()
                        .filter(|(_, c)| c.len > 300_000)
                        .map(|(p, c)| (p.clone(), c.clone()))
                        .collect();
                    (!large.is_empty()).then(|| large[rng.below(large.len() as u64) as usize].clone())
                };
                if let Some((target, before)) = target {
                    let size = bytes(&before).len();
                    let mut after = before.clone();
                    let inside =
                        (rng.below(size as u64 - 100) as usize, content_seed, 1 + rng.below(99) as usize);
                    let appended = (size, content_seed + 500_000, 1 + rng.below(8192) as usize);
                    after.edits.extend([inside, appended]);
                    model.lock().unwrap().editing = Some((target.clone(), before, after.clone()));
                    let f = fs::OpenOptions::new().read(true).write(true).open(root.join(&target))?;
                    for (offset, seed, len) in [inside, appended] {
                        std::os::unix::fs::FileExt::write_all_at(&f, &pattern(seed, len), offset as u64)?;
                    }
                    f.sync_all()?;
                    close(f)?;
                    let mut m = model.lock().unwrap();
                    m.editing = None;
                    m.edits += 1;
                    m.files.insert(target, after);
                }
            }
            16..=18 => {
                // chmod of a (large, if any) file: the content must stay whole.
                let target = {
                    let m = model.lock().unwrap();
                    m.files
                        .iter()
                        .filter(|(p, _)| p.starts_with(&format!("{dir}/")))
                        .max_by_key(|(_, c)| c.len)
                        .map(|(p, _)| p.clone())
                };
                if let Some(target) = target {
                    let mode = if rng.below(2) == 0 { 0o600 } else { 0o644 };
                    fs::set_permissions(root.join(&target), fs::Permissions::from_mode(mode))?;
                }
            }
            19..=21 => {
                let present = model.lock().unwrap().files.get(&file).cloned();
                if let Some(content) = present {
                    {
                        let mut m = model.lock().unwrap();
                        m.files.remove(&file);
                        m.deleted.insert(file.clone(), content);
                        m.in_flight = vec![file.clone()];
                    }
                    fs::remove_file(root.join(&file))?;
                }
            }
            _ => {
                // Rename a whole directory; it is not used again.
                let new = format!("{dir}-r{op}");
                let moved: BTreeMap<String, Content> = {
                    let mut m = model.lock().unwrap();
                    let prefix = format!("{dir}/");
                    let keys: Vec<String> =
                        m.files.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
                    let moved = keys
                        .iter()
                        .map(|k| (k[prefix.len()..].to_owned(), m.files.remove(k).unwrap()))
                        .collect();
                    m.deleted.retain(|k, _| !k.starts_with(&prefix));
                    m.in_flight.clear();
                    m.renamed.push((dir.clone(), new.clone(), BTreeMap::new()));
                    moved
                };
                dirs.retain(|d| *d != dir);
                model.lock().unwrap().renamed.last_mut().unwrap().2 = moved;
                fs::rename(root.join(&dir), root.join(&new))?;
            }
        }
        let mut m = model.lock().unwrap();
        m.in_flight.clear();
        m.done += 1;
    }
    Ok(())
}

/// Reads `path` in the remounted store: `None` if absent.
fn read(root: &Path, path: &str) -> Option<Vec<u8>> {
    match fs::read(root.join(path)) {
        Ok(data) => Some(data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn check(root: &Path, seed: u64, model: &Model) {
    let whole = |path: &str, content: &Content, data: &[u8]| {
        assert!(
            data == bytes(content).as_slice(),
            "seed {seed}: {path} is torn: {} bytes, expected {} of content {:?}",
            data.len(),
            bytes(content).len(),
            content
        );
    };
    for (path, content) in &model.files {
        if model.in_flight.contains(path) {
            continue;
        }
        let data = read(root, path).unwrap_or_else(|| panic!("seed {seed}: the fsynced {path} is missing"));
        match &model.editing {
            Some((editing, before, after)) if editing == path => assert!(
                data == bytes(before) || data == bytes(after),
                "seed {seed}: {path}, edited in place when the daemon died, is neither before nor after the edit"
            ),
            _ => whole(path, content, &data),
        }
    }
    for (path, content) in &model.deleted {
        if let (false, Some(data)) = (model.in_flight.contains(path), read(root, path)) {
            whole(path, content, &data);
        }
    }
    for (old, new, files) in &model.renamed {
        for (name, content) in files {
            let (a, b) = (format!("{old}/{name}"), format!("{new}/{name}"));
            match (read(root, &a), read(root, &b)) {
                (Some(data), None) => whole(&a, content, &data),
                (None, Some(data)) => whole(&b, content, &data),
                (Some(_), Some(_)) => panic!("seed {seed}: {name} is under both {old} and {new}"),
                (None, None) => panic!("seed {seed}: {name} of the renamed {old} is under neither name"),
            }
        }
    }
}

#[test]
fn fsynced_files_survive_a_killed_daemon() {
    if !can_mount() {
        return;
    }
    let seeds: Vec<u64> = match std::env::var("TIERFS_MOUNT_CRASH_SEED") {
        Ok(one) => vec![one.parse().expect("TIERFS_MOUNT_CRASH_SEED is a number")],
        Err(_) => {
            let n = std::env::var("TIERFS_MOUNT_CRASH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
            (1..=n).collect()
        }
    };
    let (mut total, mut edits) = (0, 0);
    for seed in seeds {
        let dir = tempdir();
        let m = Mount::new(dir.path());
        let model = Arc::new(Mutex::new(Model::default()));
        let worker = {
            let (root, model) = (m.mnt.clone(), model.clone());
            std::thread::spawn(move || workload(&root, seed, &model))
        };
        std::thread::sleep(Duration::from_millis(300 + Rng::new(seed).below(2_000)));
        m.kill();
        let ended = worker.join().expect("the workload thread");
        assert!(ended.is_err(), "seed {seed}: the workload ended by itself");
        let model = std::mem::take(&mut *model.lock().unwrap());
        println!(
            "seed {seed}: killed after {} operations ({} fsynced files, {} edits in place, {} renamed directories)",
            model.done,
            model.files.len(),
            model.edits,
            model.renamed.len()
        );
        total += model.done;
        edits += model.edits;
        let data = dir.path().join("data");
        let m = Mount::start(dir.path(), &data, MountSpec::default());
        check(&m.mnt, seed, &model);
        // The store stays usable: a write after the crash lands.
        fs::write(m.path("after-crash"), b"ok").unwrap();
        assert_eq!(fs::read(m.path("after-crash")).unwrap(), b"ok");
        assert!(m.unmount().success());
    }
    assert!(total > 0, "the workload never ran");
    assert!(edits > 0 || std::env::var("TIERFS_MOUNT_CRASH_SEED").is_ok(), "no file was edited in place");
}
