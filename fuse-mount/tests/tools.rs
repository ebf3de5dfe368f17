//! Ordinary tools inside a real mount: cp, cat, ls, mv, rm, mkdir, find,
//! du, tar, rsync, git and sqlite3. Each test is written once and runs on
//! every store ([`Backend`]): local and memory here, and the Garage cluster
//! with the `services` feature (`scripts/test.sh services`).
//!
//! A tool that is not installed skips its test with a message, unless
//! `TIERFS_REQUIRE_TOOLS=1` (set by `scripts/test.sh fuse`, which installs
//! them) makes that a failure.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

crate::on_every_store!(
    coreutils_on_a_tree,
    tar_create_and_extract,
    rsync_round_trip,
    git_repository_inside_the_mount,
    sqlite_database_inside_the_mount,
);

/// A source tree with small and large files, nested and empty directories,
/// symlinks, modes and old modification times.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("src/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("README"), "a tree to copy\n").unwrap();
    fs::write(root.join("src/nested/deeper/leaf.txt"), "leaf\n".repeat(100)).unwrap();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    fs::write(root.join("src/big.bin"), &big).unwrap();
    let mid: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(root.join("src/mid.bin"), &mid).unwrap();
    for i in 0..50 {
        fs::write(root.join(format!("src/nested/small{i:02}")), format!("small file {i}\n")).unwrap();
    }
    fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("README"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("src/nested/deeper/leaf.txt", root.join("leaf-link")).unwrap();
    std::os::unix::fs::symlink("../README", root.join("src/readme-link")).unwrap();
    sh(root, "touch -h -d '2020-01-02 03:04:05' README src/big.bin leaf-link src/nested");
}

fn coreutils_on_a_tree(backend: Backend) {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let src = dir.path().join("src-tree");
    make_tree(&src);
    let m = backend.mount(dir.path());
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let src_s = src.to_str().unwrap();
    sh(dir.path(), &format!("cp -a {src_s} {mnt}/copy"));
    sh(dir.path(), &format!("diff -r --no-dereference {src_s} {mnt}/copy"));
    // cp -a kept modes, times and links.
    let listing = sh(&m.mnt, "ls -la --time-style=+%Y copy");
    assert!(listing.contains("-rw------- 1 root root") && listing.contains("2020 README"), "{listing}");
    assert!(listing.contains("leaf-link -> src/nested/deeper/leaf.txt"), "{listing}");
    assert!(listing.contains("-rwxr-xr-x"), "{listing}");
    assert_eq!(sh(&m.mnt, "cat copy/src/nested/small07"), "small file 7\n");
    assert_eq!(sh(&m.mnt, "cat copy/leaf-link | wc -l").trim(), "100");
    sh(&m.mnt, "mkdir -p a/b/c/d && mv copy/src a/b/c/d/ && mv copy/README a/");
    assert_eq!(
        sh(&m.mnt, "find a -type f | sort | head -3"),
        "a/README\na/b/c/d/src/big.bin\na/b/c/d/src/mid.bin\n"
    );
    assert_eq!(sh(&m.mnt, "find a -type f | wc -l").trim(), "54");
    assert_eq!(sh(&m.mnt, "find . -type l | sort"), "./a/b/c/d/src/readme-link\n./copy/leaf-link\n");
    let du: u64 = sh(&m.mnt, "du -sk a | cut -f1").trim().parse().unwrap();
    assert!((5000..6000).contains(&du), "du says {du} KiB");
    sh(&m.mnt, "rm -r a copy");
    assert_eq!(sh(&m.mnt, "ls -A"), "");
    assert!(m.unmount().success());
}

fn tar_create_and_extract(backend: Backend) {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let src = dir.path().join("src-tree");
    make_tree(&src);
    let m = backend.mount(dir.path());
    let (mnt, src_s) = (m.mnt.to_str().unwrap().to_owned(), src.to_str().unwrap().to_owned());
    // Create an archive inside the mount, extract it inside the mount.
    sh(dir.path(), &format!("tar -C {src_s} -cf {mnt}/tree.tar ."));
    sh(&m.mnt, "mkdir out && tar -C out -xpf tree.tar");
    sh(dir.path(), &format!("diff -r --no-dereference {src_s} {mnt}/out"));
    // Archive the mounted tree and extract it outside: same content again.
    sh(dir.path(), &format!("mkdir back && tar -C {mnt}/out -cf - . | tar -C back -xpf -"));
    sh(dir.path(), &format!("diff -r --no-dereference {src_s} back"));
    let times = sh(dir.path(), "stat -c %Y back/README back/src/big.bin");
    assert_eq!(times, "1577934245\n1577934245\n", "mtimes kept");
    assert!(m.unmount().success());
}

fn rsync_round_trip(backend: Backend) {
    if !can_mount() || !need("rsync") {
        return;
    }
    let dir = tempdir();
    let src = dir.path().join("src-tree");
    make_tree(&src);
    let m = backend.mount(dir.path());
    let (mnt, src_s) = (m.mnt.to_str().unwrap().to_owned(), src.to_str().unwrap().to_owned());
    sh(dir.path(), &format!("rsync -a {src_s}/ {mnt}/tree/"));
    sh(dir.path(), &format!("rsync -a {mnt}/tree/ back/"));
    sh(dir.path(), &format!("diff -r --no-dereference {src_s} back"));
    // Nothing to transfer the second time: sizes and mtimes were kept.
    let again = sh(dir.path(), &format!("rsync -ai {src_s}/ {mnt}/tree/"));
    assert_eq!(again.trim(), "", "rsync found differences: {again}");
    // An update goes through.
    fs::write(src.join("README"), "changed\n").unwrap();
    sh(dir.path(), &format!("rsync -a {src_s}/ {mnt}/tree/"));
    assert_eq!(fs::read_to_string(m.path("tree/README")).unwrap(), "changed\n");
    assert!(m.unmount().success());
}

fn git_repository_inside_the_mount(backend: Backend) {
    if !can_mount() || !need("git") {
        return;
    }
    let dir = tempdir();
    let m = backend.mount(dir.path());
    let repo = m.path("repo");
    fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut full = vec![
            "-c",
            "user.name=TierFS",
            "-c",
            "user.email=tierfs@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ];
        full.extend_from_slice(args);
        run(&repo, "git", &full)
    };
    git(&["init", "-q"]);
    for i in 0..20 {
        fs::write(repo.join(format!("file{i}.txt")), format!("content {i}\n").repeat(i + 1)).unwrap();
    }
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    fs::write(repo.join("file3.txt"), "changed\n").unwrap();
    git(&["commit", "-q", "-am", "second"]);
    git(&["gc", "-q"]);
    git(&["fsck", "--full", "--strict"]);
    let log = String::from_utf8_lossy(&git(&["log", "--oneline"]).stdout).into_owned();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(m.unmount().success());
}

fn sqlite_database_inside_the_mount(backend: Backend) {
    if !can_mount() || !need("sqlite3") {
        return;
    }
    let dir = tempdir();
    let m = backend.mount(dir.path());
    let script = "PRAGMA journal_mode=DELETE;\n\
        CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n\
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000)\n\
        INSERT INTO t(v) SELECT hex(randomblob(40)) FROM c;\n\
        CREATE INDEX tv ON t(v);\n\
        DELETE FROM t WHERE id % 3 = 0;\n\
        VACUUM;\n";
    sh(&m.mnt, &format!("sqlite3 db.sqlite \"{script}\""));
    assert_eq!(sh(&m.mnt, "sqlite3 db.sqlite 'PRAGMA integrity_check;'").trim(), "ok");
    assert_eq!(sh(&m.mnt, "sqlite3 db.sqlite 'SELECT count(*) FROM t;'").trim(), "13334");
    sh(&m.mnt, "sqlite3 db.sqlite 'PRAGMA journal_mode=WAL; INSERT INTO t(v) VALUES (1);'");
    assert_eq!(sh(&m.mnt, "sqlite3 db.sqlite 'PRAGMA integrity_check;'").trim(), "ok");
    assert!(m.unmount().success());
    if !backend.persists() {
        return;
    }
    // And after a remount.
    let m = backend.remount(dir.path());
    assert_eq!(
        sh(&m.mnt, "sqlite3 db.sqlite 'PRAGMA integrity_check; SELECT count(*) FROM t;'"),
        "ok\n13335\n"
    );
    assert!(m.unmount().success());
}
