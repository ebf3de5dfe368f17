use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path.N`: the N-th rotated file (1 is the most recent).
pub(super) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The log's files, oldest first: `path.N`, ..., `path.1`, `path`.
pub(super) fn log_files(path: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    if files.is_empty() {
        return Err(Error::new(
            crate::ErrorKind::NotFound,
            format!("no audit log at {}; check the `[audit] path` setting", path.display()),
        ));
    }
    Ok(files)
}

/// Shifts `path.N` to `path.N+1` and `path` to `path.1`, dropping files
/// beyond `keep` rotated ones.
pub(super) fn rotate(path: &Path, keep: usize) -> Result<()> {
    let io = |e| Error::io(format!("cannot rotate the audit log {}", path.display()), e);
    let mut n = 1;
    while rotated(path, n).exists() {
        n += 1;
    }
    for i in (1..n).rev() {
        if i >= keep {
            std::fs::remove_file(rotated(path, i)).map_err(io)?;
        } else {
            std::fs::rename(rotated(path, i), rotated(path, i + 1)).map_err(io)?;
        }
    }
    std::fs::rename(path, rotated(path, 1)).map_err(io)
}
