//! TierFS FUSE front end: the store as a POSIX directory.
//!
//! - [`fs`]: the file system without a kernel ([`fs::TierFs`]): inodes,
//!   open files with spools, directory listings, group commit. Every store
//!   access goes through a `tierfs_core::Session`, so policies, access
//!   control and audit apply.
//! - [`fuse`]: the thin `fuser` adapter that turns kernel requests into
//!   calls of [`fs::TierFs`].
//! - [`errno`]: the one mapping of core errors to errno values.
//! - [`identity`]: kernel uid/gid/pid to principals and `group:NAME` roles.
//! - [`daemon`]: `tierfs mount` (signals, reload, metrics endpoint) and
//!   `tierfs unmount`.
#![deny(missing_docs)]

pub mod daemon;
pub mod errno;
pub mod fs;
pub mod fuse;
pub mod identity;
