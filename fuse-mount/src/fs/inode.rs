//! The inode table: inode numbers for the paths the kernel knows, with
//! their lookup counts.
//!
//! Each inode records its parent inode and its name, so a path (and thus a
//! key) is found by walking up to the root, and renaming a directory moves
//! its whole subtree by changing one entry. Numbers are never reused while
//! mounted. An inode lives while the kernel holds lookups on it, a file is
//! open on it, or an inode below it lives; `forget` drops it otherwise.
//! Unlinked inodes are detached from their name and kept until then.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tierfs_core::Key;

use super::attr::Kind;
use super::file::OpenFile;
use crate::errno::{FsError, FsResult};

/// The root directory's inode number.
pub const ROOT: u64 = 1;

/// Longest key, in bytes (core's limit).
pub use tierfs_core::MAX_KEY_LEN;
/// Longest name, in bytes (POSIX `NAME_MAX`, core's segment limit).
pub use tierfs_core::MAX_SEGMENT_LEN as MAX_NAME_LEN;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    kind: Kind,
    lookups: u64,
    /// Live nodes whose parent this is.
    children: u64,
    /// Still reachable by its name (false after unlink or when replaced).
    linked: bool,
    open: Option<Arc<OpenFile>>,
    opens: u64,
}

#[derive(Debug)]
struct Inner {
    nodes: HashMap<u64, Node>,
    names: HashMap<(u64, String), u64>,
    next: u64,
}

/// The table; every method takes its lock briefly and never awaits.
#[derive(Debug)]
pub struct InodeTable {
    inner: Mutex<Inner>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root.
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: 0,
                name: String::new(),
                kind: Kind::Dir,
                lookups: 1,
                children: 0,
                linked: true,
                open: None,
                opens: 0,
            },
        );
        InodeTable { inner: Mutex::new(Inner { nodes, names: HashMap::new(), next: ROOT + 1 }) }
    }

    /// The key of `ino` (`""` for the root); `ENOENT` if unknown or unlinked.
    pub fn key_of(&self, ino: u64) -> FsResult<String> {
        let inner = self.inner.lock();
        inner.key_of(ino)
    }

    /// The object key of `ino`, which is not the root (the root has none);
    /// `ENOENT` if unknown or unlinked.
    pub fn key(&self, ino: u64) -> FsResult<Key> {
        Ok(Key::new(self.key_of(ino)?)?)
    }

    /// The key of `name` inside directory `parent`, checking lengths.
    pub fn child_key(&self, parent: u64, name: &str) -> FsResult<Key> {
        check_name(name)?;
        let parent_key = self.key_of(parent)?;
        Ok(Key::new(join_key(&parent_key, name)?)?)
    }

    /// The kind recorded for `ino`.
    pub fn kind(&self, ino: u64) -> Option<Kind> {
        self.inner.lock().nodes.get(&ino).map(|n| n.kind)
    }

    /// The inode currently named `name` in `parent`, if the kernel knows one.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.inner.lock().names.get(&(parent, name.to_owned())).copied()
    }

    /// The inode for `name` in `parent` with one more lookup: the existing
    /// one if its kind matches, else a new one (the old is detached).
    pub fn lookup(&self, parent: u64, name: &str, kind: Kind) -> u64 {
        let mut inner = self.inner.lock();
        let name_key = (parent, name.to_owned());
        if let Some(&ino) = inner.names.get(&name_key) {
            let node = inner.nodes.get_mut(&ino).expect("named inodes are in the table");
            if node.kind == kind {
                node.lookups += 1;
                return ino;
            }
            node.linked = false;
            inner.names.remove(&name_key);
            inner.maybe_drop(ino);
        }
        let ino = inner.next;
        inner.next += 1;
        inner.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                kind,
                lookups: 1,
                children: 0,
                linked: true,
                open: None,
                opens: 0,
            },
        );
        if let Some(p) = inner.nodes.get_mut(&parent) {
            p.children += 1;
        }
        inner.names.insert(name_key, ino);
        ino
    }

    /// Drops `n` lookups of `ino`; the inode goes when nothing holds it.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(node) = inner.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            inner.maybe_drop(ino);
        }
    }

    /// Detaches the inode named `name` in `parent` (unlink, rmdir, or a
    /// rename target being replaced); returns it.
    pub fn unlink(&self, parent: u64, name: &str) -> Option<u64> {
        let mut inner = self.inner.lock();
        let ino = inner.names.remove(&(parent, name.to_owned()))?;
        if let Some(node) = inner.nodes.get_mut(&ino) {
            node.linked = false;
        }
        inner.maybe_drop(ino);
        Some(ino)
    }

    /// Moves the inode named `name` in `parent` to `new_name` in
    /// `new_parent`, detaching whatever had that name.
    pub fn rename(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.names.remove(&(new_parent, new_name.to_owned())) {
            if let Some(node) = inner.nodes.get_mut(&old) {
                node.linked = false;
            }
            inner.maybe_drop(old);
        }
        let Some(ino) = inner.names.remove(&(parent, name.to_owned())) else { return };
        let old_parent = {
            let node = inner.nodes.get_mut(&ino).expect("named inodes are in the table");
            let old_parent = node.parent;
            node.parent = new_parent;
            node.name = new_name.to_owned();
            old_parent
        };
        if old_parent != new_parent {
            if let Some(p) = inner.nodes.get_mut(&new_parent) {
                p.children += 1;
            }
            if let Some(p) = inner.nodes.get_mut(&old_parent) {
                p.children = p.children.saturating_sub(1);
            }
            inner.maybe_drop(old_parent);
        }
        inner.names.insert((new_parent, new_name.to_owned()), ino);
    }

    /// Whether `ino` is `ancestor` or lies below it.
    pub fn is_within(&self, ino: u64, ancestor: u64) -> bool {
        let inner = self.inner.lock();
        let mut cur = ino;
        loop {
            if cur == ancestor {
                return true;
            }
            match inner.nodes.get(&cur) {
                Some(node) if cur != ROOT => cur = node.parent,
                _ => return false,
            }
        }
    }

    /// The open-file state of `ino`, creating it with `make` if none; the
    /// open count goes up by one.
    pub fn open(&self, ino: u64, make: impl FnOnce() -> Arc<OpenFile>) -> FsResult<Arc<OpenFile>> {
        let mut inner = self.inner.lock();
        let node = inner.nodes.get_mut(&ino).ok_or_else(|| stale(ino))?;
        node.opens += 1;
        Ok(node.open.get_or_insert_with(make).clone())
    }

    /// The open-file state of `ino` if it has one, with the open count up by one.
    pub fn open_existing(&self, ino: u64) -> Option<Arc<OpenFile>> {
        let mut inner = self.inner.lock();
        let node = inner.nodes.get_mut(&ino)?;
        let file = node.open.clone()?;
        node.opens += 1;
        Some(file)
    }

    /// The open-file state of `ino` without opening it.
    pub fn open_file(&self, ino: u64) -> Option<Arc<OpenFile>> {
        self.inner.lock().nodes.get(&ino).and_then(|n| n.open.clone())
    }

    /// Drops one open of `ino`; returns whether it was the last.
    pub fn close(&self, ino: u64) -> bool {
        let mut inner = self.inner.lock();
        match inner.nodes.get_mut(&ino) {
            Some(node) => {
                node.opens = node.opens.saturating_sub(1);
                node.opens == 0
            }
            None => true,
        }
    }

    /// Detaches the open-file state of `ino` if no open remains.
    pub fn detach_if_closed(&self, ino: u64) {
        let mut inner = self.inner.lock();
        if let Some(node) = inner.nodes.get_mut(&ino) {
            if node.opens == 0 {
                node.open = None;
                inner.maybe_drop(ino);
            }
        }
    }

    /// Every inode at or below `ino` with open-file state (for directory renames).
    pub fn open_files_within(&self, ino: u64) -> Vec<(u64, Arc<OpenFile>)> {
        let inner = self.inner.lock();
        let mut out: Vec<(u64, Arc<OpenFile>)> = inner
            .nodes
            .iter()
            .filter_map(|(&i, n)| n.open.clone().map(|f| (i, f)))
            .filter(|(i, _)| inner.is_within(*i, ino))
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Every inode with open-file state (for the final flush).
    pub fn all_open_files(&self) -> Vec<(u64, Arc<OpenFile>)> {
        let inner = self.inner.lock();
        let mut out: Vec<(u64, Arc<OpenFile>)> =
            inner.nodes.iter().filter_map(|(&i, n)| n.open.clone().map(|f| (i, f))).collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Number of inodes in the table (root included).
    pub fn len(&self) -> usize {
        self.inner.lock().nodes.len()
    }

    /// Whether only the root is left.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// The lookup count of `ino` (tests).
    pub fn lookups(&self, ino: u64) -> u64 {
        self.inner.lock().nodes.get(&ino).map_or(0, |n| n.lookups)
    }
}

impl Inner {
    fn key_of(&self, ino: u64) -> FsResult<String> {
        let mut segments = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let node = self.nodes.get(&cur).ok_or_else(|| stale(ino))?;
            if !node.linked {
                return Err(FsError::new(libc::ENOENT, format!("inode {ino} was removed")));
            }
            segments.push(node.name.as_str());
            cur = node.parent;
        }
        segments.reverse();
        Ok(segments.join("/"))
    }

    fn is_within(&self, ino: u64, ancestor: u64) -> bool {
        let mut cur = ino;
        loop {
            if cur == ancestor {
                return true;
            }
            match self.nodes.get(&cur) {
                Some(node) if cur != ROOT => cur = node.parent,
                _ => return false,
            }
        }
    }

    /// Removes `ino` if nothing holds it, then its parent if that frees it.
    fn maybe_drop(&mut self, ino: u64) {
        let mut cur = ino;
        while cur != ROOT {
            let Some(node) = self.nodes.get(&cur) else { return };
            if node.lookups > 0 || node.opens > 0 || node.open.is_some() || node.children > 0 {
                return;
            }
            let node = self.nodes.remove(&cur).expect("just seen");
            if node.linked {
                let key = (node.parent, node.name);
                if self.names.get(&key) == Some(&cur) {
                    self.names.remove(&key);
                }
            }
            match self.nodes.get_mut(&node.parent) {
                Some(parent) => parent.children = parent.children.saturating_sub(1),
                None => return,
            }
            cur = node.parent;
        }
    }
}

fn stale(ino: u64) -> FsError {
    FsError::new(libc::ENOENT, format!("inode {ino} is not known (forgotten or never looked up)"))
}

/// Checks a name from the kernel: UTF-8 is checked by the caller; here the
/// length and the characters keys refuse.
pub fn check_name(name: &str) -> FsResult<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::new(
            libc::ENAMETOOLONG,
            format!("the name is {} bytes long; the limit is {MAX_NAME_LEN}", name.len()),
        ));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(FsError::new(libc::EINVAL, format!("`{name}` cannot be a file name")));
    }
    Ok(())
}

/// `parent/name`, or `name` at the root, checking the key length.
pub fn join_key(parent: &str, name: &str) -> FsResult<String> {
    let key = if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") };
    if key.len() > MAX_KEY_LEN {
        return Err(FsError::new(
            libc::ENAMETOOLONG,
            format!("the path is {} bytes long; TierFS keys are at most {MAX_KEY_LEN} bytes", key.len()),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_renames_of_directories() {
        let t = InodeTable::new();
        let a = t.lookup(ROOT, "a", Kind::Dir);
        let b = t.lookup(a, "b", Kind::Dir);
        let f = t.lookup(b, "f.txt", Kind::File);
        assert_eq!(t.key_of(f).unwrap(), "a/b/f.txt");
        assert_eq!(t.child_key(b, "g").unwrap().as_str(), "a/b/g");
        t.rename(ROOT, "a", ROOT, "z");
        assert_eq!(t.key_of(f).unwrap(), "z/b/f.txt");
        assert_eq!(t.child(ROOT, "z"), Some(a));
        assert_eq!(t.child(ROOT, "a"), None);
        assert!(t.is_within(f, a));
        assert!(!t.is_within(a, f));
    }

    #[test]
    fn lookups_and_forget() {
        let t = InodeTable::new();
        let a = t.lookup(ROOT, "a", Kind::File);
        assert_eq!(t.lookup(ROOT, "a", Kind::File), a);
        assert_eq!(t.lookups(a), 2);
        t.forget(a, 1);
        assert_eq!(t.key_of(a).unwrap(), "a");
        t.forget(a, 1);
        assert!(t.key_of(a).is_err());
        assert!(t.is_empty());
        // A new inode for the same name gets a new number.
        assert_ne!(t.lookup(ROOT, "a", Kind::File), a);
    }

    #[test]
    fn parents_live_while_children_do() {
        let t = InodeTable::new();
        let d = t.lookup(ROOT, "d", Kind::Dir);
        let f = t.lookup(d, "f", Kind::File);
        t.forget(d, 1);
        assert_eq!(t.key_of(f).unwrap(), "d/f");
        t.forget(f, 1);
        assert!(t.is_empty(), "{} left", t.len());
    }

    #[test]
    fn unlinked_inodes_lose_their_path() {
        let t = InodeTable::new();
        let f = t.lookup(ROOT, "f", Kind::File);
        assert_eq!(t.unlink(ROOT, "f"), Some(f));
        assert_eq!(t.key_of(f).unwrap_err().errno(), libc::ENOENT);
        assert_eq!(t.child(ROOT, "f"), None);
        let g = t.lookup(ROOT, "g", Kind::File);
        let h = t.lookup(ROOT, "h", Kind::File);
        t.rename(ROOT, "g", ROOT, "h");
        assert!(t.key_of(h).is_err());
        assert_eq!(t.key_of(g).unwrap(), "h");
    }

    #[test]
    fn a_kind_change_makes_a_new_inode() {
        let t = InodeTable::new();
        let f = t.lookup(ROOT, "x", Kind::File);
        let d = t.lookup(ROOT, "x", Kind::Dir);
        assert_ne!(f, d);
        assert!(t.key_of(f).is_err());
        assert_eq!(t.key_of(d).unwrap(), "x");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(&"n".repeat(256)).unwrap_err().errno(), libc::ENAMETOOLONG);
        check_name(&"n".repeat(255)).unwrap();
        assert_eq!(check_name("..").unwrap_err().errno(), libc::EINVAL);
        let deep = "d".repeat(1000);
        assert_eq!(join_key(&deep, &"e".repeat(30)).unwrap_err().errno(), libc::ENAMETOOLONG);
    }
}
