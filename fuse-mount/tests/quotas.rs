//! Quotas through a mount: `cp` into a directory a quota counts stops at
//! the quota with `EDQUOT` ("Disk quota exceeded") and leaves nothing
//! half-written in the store, for a small file (refused before its first
//! write lands) and a large one (a streamed upload refused at the chunk
//! that passes); creating a file past the key limit, a truncate past the
//! byte limit and `df` of the directory show the quota; `rm` frees room at
//! once; after a SIGKILL of the daemon the quota counts what the store
//! holds.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tierfs_core::{Config, Storage, StorageManager};

const MAX_BYTES: u64 = 1 << 20;
const MAX_KEYS: u64 = 6;

fn write_config(base: &Path) -> PathBuf {
    let text = format!(
        "[backends.disk]\ntype = \"local\"\npath = {:?}\n\
         [[quotas]]\nprefix = \"home/\"\nmax_bytes = {MAX_BYTES}\nmax_keys = {MAX_KEYS}\n",
        base.join("disk"),
    );
    let path = base.join("quotas.toml");
    fs::write(&path, text).unwrap();
    path
}

/// Runs `script`, which must fail, and returns its error output.
fn fails(dir: &Path, script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).current_dir(dir).output().unwrap();
    assert!(!out.status.success(), "`{script}` succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `df -B1` of `path`: (size, available) in bytes.
fn df(path: &Path) -> (u64, u64) {
    let out = sh(Path::new("/"), &format!("df -B1 --output=size,avail {} | tail -1", path.display()));
    let mut fields = out.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

/// Sizes of the keys under `home/` in the store (read with the mount gone),
/// and what the quota counts after a fresh open.
fn stored(config: &Path) -> (Vec<(String, u64)>, u64, u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let manager = StorageManager::open(Config::load(config).unwrap()).await.unwrap();
        let store = manager.session("root");
        let page = store.list(&tierfs_core::ListOptions::recursive("home/")).await.unwrap();
        let mut sizes = Vec::new();
        for entry in page.entries {
            if let tierfs_core::ListEntry::Object(meta) = entry {
                sizes.push((meta.key.to_string(), meta.size));
            }
        }
        let quota = manager.quota_of("home/").unwrap();
        manager.shutdown().await.unwrap();
        (sizes, quota.used.bytes, quota.used.keys)
    })
}

#[test]
fn cp_stops_at_the_quota_with_edquot_and_nothing_half_written() {
    if !can_mount() || !need("df") {
        return;
    }
    let dir = tempdir();
    let base = dir.path();
    let config = write_config(base);
    let spec = || MountSpec { config: Some(config.clone()), ..Default::default() };
    let src = base.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), vec![1u8; 700_000]).unwrap();
    fs::write(src.join("small"), vec![2u8; 200_000]).unwrap();
    fs::write(src.join("huge"), vec![3u8; 3_000_000]).unwrap();

    let m = Mount::start(base, base, spec());
    fs::create_dir(m.path("home")).unwrap();
    let home = m.path("home");
    assert_eq!(df(&home).0, MAX_BYTES, "df of a directory under a quota shows the quota's size");
    sh(base, &format!("cp {}/big {}/big", src.display(), home.display()));
    let (size, avail) = df(&home);
    assert_eq!(size, MAX_BYTES);
    assert!(avail <= MAX_BYTES - 700_000 && avail + 8192 > MAX_BYTES - 700_000, "df avail {avail}");

    // 700,000 + 200,000 fit; 700,000 + 2 x 200,000 do not: the second
    // small copy is refused, before its bytes were kept anywhere.
    sh(base, &format!("cp {}/small {}/s1", src.display(), home.display()));
    let err = fails(base, &format!("cp {}/small {}/s2", src.display(), home.display()));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    // A large copy is streamed; refused at the chunk that passes.
    let err = fails(base, &format!("cp {}/huge {}/huge", src.display(), home.display()));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    // Growing a file past the quota with truncate is refused too.
    let err = fails(base, &format!("truncate -s 2M {}/big", home.display()));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    assert_eq!(fs::metadata(home.join("big")).unwrap().len(), 700_000);
    // The refused files read as the store holds them: created, empty.
    assert_eq!(fs::metadata(home.join("s2")).unwrap().len(), 0);
    assert_eq!(fs::metadata(home.join("huge")).unwrap().len(), 0);

    // rm frees room at once: the copy goes through now.
    fs::remove_file(home.join("big")).unwrap();
    sh(base, &format!("cp {}/small {}/s2", src.display(), home.display()));
    assert_eq!(fs::read(home.join("s2")).unwrap(), vec![2u8; 200_000]);

    // The key limit: s1, s2, huge hold three of six; three more files fit.
    for name in ["t1", "t2", "t3"] {
        fs::write(home.join(name), b"x").unwrap();
    }
    let err = fails(base, &format!("touch {}/t4", home.display()));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    assert!(!home.join("t4").exists());
    assert!(m.unmount().success());

    let (sizes, bytes, keys) = stored(&config);
    let expected: Vec<(String, u64)> = [
        ("home/huge", 0),
        ("home/s1", 200_000),
        ("home/s2", 200_000),
        ("home/t1", 1),
        ("home/t2", 1),
        ("home/t3", 1),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), *s))
    .collect();
    assert_eq!(sizes, expected, "nothing half-written, nothing lost");
    assert_eq!((bytes, keys), (400_003, 6));
}

#[test]
fn after_a_sigkill_the_quota_counts_what_the_store_holds() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let base = dir.path();
    let config = write_config(base);
    let m = Mount::start(base, base, MountSpec { config: Some(config.clone()), ..Default::default() });
    fs::create_dir(m.path("home")).unwrap();
    fs::write(m.path("home/a"), vec![5u8; 300_000]).unwrap();
    fs::write(m.path("home/b"), vec![6u8; 1000]).unwrap();
    // A copy cut off by the kill: its writes acknowledged, the file never closed.
    let mut open = fs::File::create(m.path("home/c")).unwrap();
    std::io::Write::write_all(&mut open, &[7u8; 400_000]).unwrap();
    m.kill();
    drop(open);

    let (sizes, bytes, keys) = stored(&config);
    let total: u64 = sizes.iter().map(|(_, s)| s).sum();
    assert_eq!((bytes, keys), (total, sizes.len() as u64), "usage {sizes:?}");
    // Quota-counted files are saved at close, so the closed ones are there whole.
    assert!(sizes.contains(&("home/a".to_owned(), 300_000)), "{sizes:?}");
    assert!(sizes.contains(&("home/b".to_owned(), 1000)), "{sizes:?}");
    // The unclosed one is its created, empty self or absent, never a part.
    assert!(sizes.iter().all(|(k, s)| k != "home/c" || *s == 0), "{sizes:?}");
}
