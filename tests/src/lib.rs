//! Shared pieces of the workspace tests: the behaviour suite that every
//! backend and every policy stack must pass, and small helpers.

pub mod access_reference;
pub mod behaviour;
pub mod crash;
pub mod data;
pub mod faults;
pub mod plugins;
pub mod services;

use std::any::Any;
use std::sync::Arc;

use tierfs_core::Storage;

/// A storage under test plus whatever must live as long as it (temporary
/// directories, servers).
pub struct Fixture {
    /// The storage under test.
    pub storage: Arc<dyn Storage>,
    _keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture keeping `keep` alive beside `storage`.
    pub fn new(storage: Arc<dyn Storage>, keep: Vec<Box<dyn Any + Send + Sync>>) -> Self {
        Fixture { storage, _keep: keep }
    }
}

/// Peak resident memory of this process so far, in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM value");
    kib * 1024
}
