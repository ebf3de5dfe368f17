//! Extended attributes through a mount with `--xattrs`: `user.` attributes
//! on files and directories are stored with the object (a metadata-only
//! change), read back, listed, removed, kept across a remount and by
//! `cp -a`; other namespaces and oversized values are refused as Linux
//! tools expect. Without `--xattrs` none are served.

mod common;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::*;

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn set(path: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let name = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of `value.len()` bytes.
    let rc =
        unsafe { libc::setxattr(c(path).as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 8192];
    // SAFETY: valid strings and a writable buffer of its length.
    let n = unsafe { libc::getxattr(c(path).as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn size_of(path: &Path, name: &str) -> isize {
    let name = CString::new(name).unwrap();
    // SAFETY: a size query: no buffer.
    unsafe { libc::getxattr(c(path).as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) }
}

fn list(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 8192];
    // SAFETY: a valid path and a writable buffer of its length.
    let n = unsafe { libc::listxattr(c(path).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    names.sort();
    names
}

fn remove(path: &Path, name: &str) -> std::io::Result<()> {
    let name = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe { libc::removexattr(c(path).as_ptr(), name.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn errno(result: std::io::Result<impl std::fmt::Debug>) -> i32 {
    result.expect_err("expected an error").raw_os_error().unwrap()
}

#[test]
fn user_attributes_are_stored_listed_removed_and_kept() {
    if !can_mount() {
        return;
    }
    let dir = tempdir();
    let data = dir.path().join("data");
    let spec = MountSpec { args: vec!["--xattrs".into()], ..Default::default() };
    let m = Mount::start(dir.path(), &data, spec.clone());
    fs::write(m.path("f.txt"), b"content").unwrap();
    fs::create_dir(m.path("d")).unwrap();
    let (f, d) = (m.path("f.txt"), m.path("d"));

    let binary: Vec<u8> = (0..=255).collect();
    set(&f, "user.checksum", b"sha256:abc", 0).unwrap();
    set(&f, "user.binary", &binary, 0).unwrap();
    set(&d, "user.project", b"tierfs", 0).unwrap();
    assert_eq!(get(&f, "user.checksum").unwrap(), b"sha256:abc");
    assert_eq!(get(&f, "user.binary").unwrap(), binary);
    assert_eq!(size_of(&f, "user.binary"), 256);
    assert_eq!(list(&f), ["user.binary", "user.checksum"]);
    assert_eq!(get(&d, "user.project").unwrap(), b"tierfs");

    // Create-only and replace-only, missing names, other namespaces.
    assert_eq!(errno(set(&f, "user.checksum", b"x", libc::XATTR_CREATE)), libc::EEXIST);
    assert_eq!(errno(set(&f, "user.absent", b"x", libc::XATTR_REPLACE)), libc::ENODATA);
    set(&f, "user.checksum", b"sha256:def", libc::XATTR_REPLACE).unwrap();
    assert_eq!(errno(get(&f, "user.absent")), libc::ENODATA);
    assert_eq!(errno(get(&f, "security.selinux")), libc::ENODATA);
    assert_eq!(errno(set(&f, "trusted.x", b"x", 0)), libc::ENOTSUP);
    assert_eq!(errno(set(&f, "user.big", &vec![1u8; 5000], 0)), libc::ENOSPC);
    // The content and the other attributes are untouched by all that.
    assert_eq!(fs::read(&f).unwrap(), b"content");

    // An open file sees its attributes, and changes them, while written.
    let mut open = fs::OpenOptions::new().append(true).open(&f).unwrap();
    open.write_all(b" more").unwrap();
    set(&f, "user.while-open", b"1", 0).unwrap();
    drop(open);
    assert_eq!(fs::read(&f).unwrap(), b"content more");
    remove(&f, "user.binary").unwrap();
    assert_eq!(errno(remove(&f, "user.binary")), libc::ENODATA);
    assert_eq!(list(&f), ["user.checksum", "user.while-open"]);

    // cp -a carries them (coreutils copies user.* attributes).
    let out = run(&m.mnt, "cp", &["-a", "f.txt", "copy.txt"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(&m.path("copy.txt"), "user.checksum").unwrap(), b"sha256:def");
    assert!(m.unmount().success());

    let m = Mount::start(dir.path(), &data, spec);
    assert_eq!(list(&m.path("f.txt")), ["user.checksum", "user.while-open"]);
    assert_eq!(get(&m.path("f.txt"), "user.checksum").unwrap(), b"sha256:def");
    assert_eq!(get(&m.path("d"), "user.project").unwrap(), b"tierfs");
    assert_eq!(fs::read(m.path("f.txt")).unwrap(), b"content more");
    assert!(m.unmount().success());

    // Without --xattrs (the default) the mount serves none: "Operation not
    // supported", which cp -a and rsync -a take in their stride.
    let m = Mount::start(dir.path(), &data, MountSpec::default());
    assert_eq!(errno(get(&m.path("f.txt"), "user.checksum")), libc::EOPNOTSUPP);
    assert_eq!(errno(set(&m.path("f.txt"), "user.x", b"1", 0)), libc::EOPNOTSUPP);
    let out = run(&m.mnt, "cp", &["-a", "f.txt", "plain-copy.txt"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(m.unmount().success());
}
