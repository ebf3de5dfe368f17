//! POSIX attributes and their home in an object's metadata map.
//!
//! Every object the file system writes carries `posix.*` entries, so mode,
//! owner, times and symlink targets survive a remount:
//!
//! | entry | value |
//! |---|---|
//! | `posix.type` | `file` (also when absent), `dir`, `symlink`, `fifo`, `socket`, `char`, `block` |
//! | `posix.mode` | permission bits in octal, with set-id and sticky bits (`644`, `4755`) |
//! | `posix.uid`, `posix.gid` | decimal ids |
//! | `posix.atime`, `posix.mtime`, `posix.ctime` | `SECONDS.NANOSECONDS` since the epoch (seconds may be negative) |
//! | `posix.target` | the symlink target |
//! | `posix.rdev` | device number of `char` and `block` nodes |
//!
//! Objects written by other faces (Python, Node, Rust) have none of these:
//! they appear as regular files (or directories, for implicit prefixes) with
//! the mount's default owner and mode, and the store's modification time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tierfs_core::{Metadata, ObjectMeta};

/// The `posix.type` entry.
pub const TYPE: &str = "posix.type";
/// The `posix.mode` entry.
pub const MODE: &str = "posix.mode";
/// The `posix.uid` entry.
pub const UID: &str = "posix.uid";
/// The `posix.gid` entry.
pub const GID: &str = "posix.gid";
/// The `posix.atime` entry.
pub const ATIME: &str = "posix.atime";
/// The `posix.mtime` entry.
pub const MTIME: &str = "posix.mtime";
/// The `posix.ctime` entry.
pub const CTIME: &str = "posix.ctime";
/// The `posix.target` entry.
pub const TARGET: &str = "posix.target";
/// The `posix.rdev` entry.
pub const RDEV: &str = "posix.rdev";

/// Block size reported by `stat`.
pub const BLOCK_SIZE: u32 = 4096;

/// What kind of node a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory (a marker object, or a prefix with keys below it).
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl Kind {
    /// The `posix.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char",
            Kind::BlockDevice => "block",
        }
    }

    /// Parses a `posix.type` value; unknown values are regular files.
    pub fn parse(s: &str) -> Kind {
        match s {
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            "fifo" => Kind::Fifo,
            "socket" => Kind::Socket,
            "char" => Kind::CharDevice,
            "block" => Kind::BlockDevice,
            _ => Kind::File,
        }
    }

    /// The kind encoded in the `S_IFMT` bits of `mode`, if it is one we store.
    pub fn from_mode(mode: u32) -> Option<Kind> {
        match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => Some(Kind::File),
            libc::S_IFDIR => Some(Kind::Dir),
            libc::S_IFLNK => Some(Kind::Symlink),
            libc::S_IFIFO => Some(Kind::Fifo),
            libc::S_IFSOCK => Some(Kind::Socket),
            libc::S_IFCHR => Some(Kind::CharDevice),
            libc::S_IFBLK => Some(Kind::BlockDevice),
            _ => None,
        }
    }
}

/// Owner and mode given to objects that carry no `posix.*` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits of files.
    pub file_mode: u32,
    /// Permission bits of directories.
    pub dir_mode: u32,
    /// Times of directories that exist only as prefixes.
    pub time: SystemTime,
}

impl Default for Defaults {
    fn default() -> Self {
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Defaults { uid, gid, file_mode: 0o644, dir_mode: 0o755, time: SystemTime::now() }
    }
}

/// The POSIX view of one node: everything `stat` shows but the inode
/// number, the size and the link count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixMeta {
    /// What it is.
    pub kind: Kind,
    /// Permission bits, with set-id and sticky bits (`0o7777` at most).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification of the content.
    pub mtime: SystemTime,
    /// Last change of the content or the attributes.
    pub ctime: SystemTime,
    /// Device number (device nodes only).
    pub rdev: u32,
    /// Symlink target.
    pub target: Option<String>,
}

impl PosixMeta {
    /// A new node of `kind` owned by `uid:gid`, all times now.
    pub fn new(kind: Kind, mode: u32, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        PosixMeta {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            rdev: 0,
            target: None,
        }
    }

    /// A directory that exists only because keys exist below it.
    pub fn implicit_dir(defaults: &Defaults) -> Self {
        PosixMeta {
            kind: Kind::Dir,
            mode: defaults.dir_mode,
            uid: defaults.uid,
            gid: defaults.gid,
            atime: defaults.time,
            mtime: defaults.time,
            ctime: defaults.time,
            rdev: 0,
            target: None,
        }
    }

    /// Reads the `posix.*` entries of `meta`, filling gaps from `defaults`
    /// and the store's modification time.
    pub fn from_object(meta: &ObjectMeta, defaults: &Defaults) -> Self {
        Self::from_metadata(&meta.metadata, meta.modified, defaults)
    }

    /// Reads the `posix.*` entries of `metadata`.
    pub fn from_metadata(metadata: &Metadata, modified: SystemTime, defaults: &Defaults) -> Self {
        let kind = metadata.get(TYPE).map_or(Kind::File, |t| Kind::parse(t));
        let default_mode = if kind == Kind::Dir { defaults.dir_mode } else { defaults.file_mode };
        let mode = metadata
            .get(MODE)
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .map_or(default_mode, |m| m & 0o7777);
        let number =
            |name: &str, default: u32| metadata.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        let time = |name: &str| metadata.get(name).and_then(|v| parse_time(v)).unwrap_or(modified);
        PosixMeta {
            kind,
            mode,
            uid: number(UID, defaults.uid),
            gid: number(GID, defaults.gid),
            atime: time(ATIME),
            mtime: time(MTIME),
            ctime: time(CTIME),
            rdev: number(RDEV, 0),
            target: metadata.get(TARGET).cloned(),
        }
    }

    /// Writes the `posix.*` entries into `metadata`, keeping every other entry.
    pub fn write_to(&self, metadata: &mut Metadata) {
        metadata.insert(TYPE.into(), self.kind.as_str().into());
        metadata.insert(MODE.into(), format!("{:o}", self.mode & 0o7777));
        metadata.insert(UID.into(), self.uid.to_string());
        metadata.insert(GID.into(), self.gid.to_string());
        metadata.insert(ATIME.into(), format_time(self.atime));
        metadata.insert(MTIME.into(), format_time(self.mtime));
        metadata.insert(CTIME.into(), format_time(self.ctime));
        match &self.target {
            Some(target) => metadata.insert(TARGET.into(), target.clone()),
            None => metadata.remove(TARGET),
        };
        if matches!(self.kind, Kind::CharDevice | Kind::BlockDevice) {
            metadata.insert(RDEV.into(), self.rdev.to_string());
        } else {
            metadata.remove(RDEV);
        }
    }

    /// The metadata map of a new object holding only these entries.
    pub fn to_metadata(&self) -> Metadata {
        let mut metadata = Metadata::new();
        self.write_to(&mut metadata);
        metadata
    }

    /// Sets mtime and ctime to now (content changed).
    pub fn touch_content(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// `stat` data of one node, as the FUSE adapter hands it to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Kind, mode, owner and times.
    pub posix: PosixMeta,
    /// Link count.
    pub nlink: u32,
}

impl Attr {
    /// Attributes of inode `ino` with `posix` and `size`.
    pub fn new(ino: u64, posix: PosixMeta, size: u64) -> Self {
        let size = match posix.kind {
            Kind::Dir => u64::from(BLOCK_SIZE),
            Kind::Symlink => posix.target.as_ref().map_or(0, |t| t.len() as u64),
            _ => size,
        };
        let nlink = if posix.kind == Kind::Dir { 2 } else { 1 };
        Attr { ino, size, blocks: size.div_ceil(512), posix, nlink }
    }
}

/// Formats a time as `SECONDS.NANOSECONDS` (seconds negative before 1970,
/// nanoseconds always counted forwards).
pub fn format_time(t: SystemTime) -> String {
    let (secs, nanos) = split_time(t);
    format!("{secs}.{nanos:09}")
}

/// Seconds (possibly negative) and forward nanoseconds of `t`.
pub fn split_time(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    }
}

/// The time `secs` seconds (possibly negative) plus `nanos` after the epoch.
pub fn join_time(secs: i64, nanos: u32) -> SystemTime {
    let forward = Duration::new(0, nanos.min(999_999_999));
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + forward
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + forward
    }
}

/// Parses [`format_time`]'s output; `None` if malformed.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = s.split_once('.').unwrap_or((s, "0"));
    let secs: i64 = secs.parse().ok()?;
    if nanos.is_empty() || nanos.len() > 9 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{nanos:0<9}").parse().ok()?;
    Some(join_time(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_before_and_after_the_epoch() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_732_550_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 0),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
        ] {
            assert_eq!(parse_time(&format_time(t)), Some(t), "{}", format_time(t));
        }
        assert_eq!(format_time(UNIX_EPOCH - Duration::new(5, 250_000_000)), "-6.750000000");
        assert_eq!(parse_time("12"), Some(UNIX_EPOCH + Duration::from_secs(12)));
        assert_eq!(parse_time("1.5"), Some(UNIX_EPOCH + Duration::from_millis(1500)));
        assert_eq!(parse_time("x.1"), None);
        assert_eq!(parse_time("1.-1"), None);
    }

    #[test]
    fn metadata_round_trip_keeps_other_entries() {
        let mut posix = PosixMeta::new(Kind::Symlink, 0o4755, 1000, 100);
        posix.target = Some("../x".into());
        let mut metadata = Metadata::new();
        metadata.insert("user.note".into(), "kept".into());
        posix.write_to(&mut metadata);
        assert_eq!(metadata["posix.mode"], "4755");
        assert_eq!(metadata["user.note"], "kept");
        let back = PosixMeta::from_metadata(&metadata, UNIX_EPOCH, &Defaults::default());
        assert_eq!(back, posix);
    }

    #[test]
    fn foreign_objects_get_defaults() {
        let defaults = Defaults { uid: 7, gid: 8, file_mode: 0o640, dir_mode: 0o750, time: UNIX_EPOCH };
        let modified = UNIX_EPOCH + Duration::from_secs(99);
        let p = PosixMeta::from_metadata(&Metadata::new(), modified, &defaults);
        assert_eq!((p.kind, p.mode, p.uid, p.gid, p.mtime), (Kind::File, 0o640, 7, 8, modified));
        let attr = Attr::new(3, p, 1000);
        assert_eq!((attr.size, attr.blocks, attr.nlink), (1000, 2, 1));
        let dir = Attr::new(4, PosixMeta::implicit_dir(&defaults), 0);
        assert_eq!((dir.posix.mode, dir.nlink), (0o750, 2));
    }

    #[test]
    fn kinds_from_mode() {
        assert_eq!(Kind::from_mode(libc::S_IFIFO | 0o644), Some(Kind::Fifo));
        assert_eq!(Kind::from_mode(0o644), Some(Kind::File));
        assert_eq!(Kind::parse(Kind::BlockDevice.as_str()), Kind::BlockDevice);
    }
}
