//! The log's files: `path`, and `path.1` … `path.N` rotated (1 is the most
//! recent), and reading their first and last lines.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `path.N`: the N-th rotated file (1 is the most recent).
pub(super) fn rotated(path: &Path, n: usize) -> PathBuf {
    with_suffix(path, &format!(".{n}"))
}

/// The log's files that exist, oldest first: `path.N`, ..., `path.1`, `path`.
pub(super) fn existing_files(path: &Path) -> Vec<PathBuf> {
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
    files
}

/// The log's files, oldest first; `NotFound` when there is none.
pub(super) fn log_files(path: &Path) -> Result<Vec<PathBuf>> {
    let files = existing_files(path);
    if files.is_empty() {
        return Err(Error::new(
            crate::ErrorKind::NotFound,
            format!("no audit log at {}; check the `[audit] path` setting", path.display()),
        ));
    }
    Ok(files)
}

/// The log's regular files holding at least one byte, oldest first (a
/// device such as `/dev/full` holds no records).
pub(super) fn record_files(path: &Path) -> Vec<PathBuf> {
    existing_files(path)
        .into_iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file() && m.len() > 0))
        .collect()
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

/// The first line of `file`, without its newline.
pub(super) fn first_line(file: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut reader = BufReader::new(File::open(file)?);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok((!line.is_empty()).then_some(line))
}

/// The last line of `file` and whether it ends with a newline, reading
/// backwards in growing windows.
pub(super) fn last_line(file: &Path) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        Read::by_ref(&mut f).take(len - start).read_to_end(&mut buf)?;
        let complete = buf.last() == Some(&b'\n');
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match trimmed.iter().rposition(|b| *b == b'\n') {
            Some(i) => return Ok(Some((trimmed[i + 1..].to_vec(), complete))),
            None if start == 0 => return Ok((!trimmed.is_empty()).then(|| (trimmed.to_vec(), complete))),
            None => window *= 4,
        }
    }
}

/// Cuts `file` back to the end of its last complete line when its last
/// line has no newline (a write cut short by a crash); returns the bytes cut.
pub(super) fn cut_torn_tail(file: &Path) -> std::io::Result<Option<u64>> {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let keep = match last_line(file)? {
        Some((line, _)) => len - line.len() as u64,
        None => 0,
    };
    f.set_len(keep)?;
    f.sync_data()?;
    Ok(Some(len - keep))
}
