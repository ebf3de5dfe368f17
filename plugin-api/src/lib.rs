//! The stable C ABI of TierFS backend plugins, and a safe Rust side for
//! writing them.
//!
//! A plugin is a shared library (`cdylib`) that adds one backend type to
//! TierFS at run time. The configuration names it:
//!
//! ```toml
//! plugins = ["target/debug/libtierfs_plugin_appendlog.so"]
//!
//! [backends.log]
//! type = "appendlog"
//! path = "data/tierfs.log"
//! ```
//!
//! # Writing a plugin in Rust
//!
//! Implement [`PluginBackend`] (synchronous methods returning
//! `Result<_, PluginError>`) and export it with [`export_plugin!`], in a
//! crate with `crate-type = ["cdylib"]` that depends on this crate only:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::RwLock;
//! use std::time::SystemTime;
//!
//! use tierfs_plugin_api::{
//!     export_plugin, Capabilities, CreateContext, ListPage, ListPageBuilder, ListRequest, Metadata,
//!     ObjectStat, PluginBackend, PluginError, PluginResult, Settings,
//! };
//!
//! /// Values in a map, gone with the process.
//! pub struct Scratch {
//!     map: RwLock<BTreeMap<String, (Vec<u8>, ObjectStat)>>,
//! }
//!
//! impl PluginBackend for Scratch {
//!     fn create(settings: &Settings, _context: &CreateContext) -> PluginResult<Self> {
//!         settings.expect_only(&[])?;
//!         Ok(Scratch { map: RwLock::default() })
//!     }
//!
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities { range_read: true, conditional_put: true, ..Default::default() }
//!     }
//!
//!     fn get_range(&self, key: &str, start: u64, end: u64) -> PluginResult<(Vec<u8>, ObjectStat)> {
//!         let map = self.map.read().map_err(|_| PluginError::unavailable("lock poisoned"))?;
//!         let (value, stat) = map.get(key).ok_or_else(PluginError::not_found)?;
//!         let end = end.min(value.len() as u64) as usize;
//!         let start = (start as usize).min(end);
//!         Ok((value[start..end].to_vec(), stat.clone()))
//!     }
//!
//!     fn put(&self, key: &str, value: &[u8], metadata: Metadata, if_not_exists: bool) -> PluginResult<ObjectStat> {
//!         let mut map = self.map.write().map_err(|_| PluginError::unavailable("lock poisoned"))?;
//!         if if_not_exists && map.contains_key(key) {
//!             return Err(PluginError::already_exists());
//!         }
//!         let version = map.get(key).map_or(1, |(_, s)| s.version.parse::<u64>().unwrap_or(0) + 1);
//!         let stat = ObjectStat {
//!             size: value.len() as u64,
//!             modified: SystemTime::now(),
//!             version: version.to_string(),
//!             metadata,
//!         };
//!         map.insert(key.to_owned(), (value.to_vec(), stat.clone()));
//!         Ok(stat)
//!     }
//!
//!     fn delete(&self, key: &str) -> PluginResult<()> {
//!         self.map.write().map_err(|_| PluginError::unavailable("lock poisoned"))?.remove(key);
//!         Ok(())
//!     }
//!
//!     fn stat(&self, key: &str) -> PluginResult<ObjectStat> {
//!         let map = self.map.read().map_err(|_| PluginError::unavailable("lock poisoned"))?;
//!         map.get(key).map(|(_, s)| s.clone()).ok_or_else(PluginError::not_found)
//!     }
//!
//!     fn list(&self, request: &ListRequest) -> PluginResult<ListPage> {
//!         let map = self.map.read().map_err(|_| PluginError::unavailable("lock poisoned"))?;
//!         let mut page = ListPageBuilder::new(request);
//!         for (key, (_, stat)) in map.range((request.start_bound(), std::ops::Bound::Unbounded)) {
//!             if !page.push(key, || Ok(stat.clone()))? {
//!                 break;
//!             }
//!         }
//!         Ok(page.finish())
//!     }
//! }
//!
//! export_plugin!(Scratch, "scratch");
//!
//! # fn main() {
//! // What the host sees: the version first, then the vtable.
//! assert_eq!(tierfs_plugin_abi_version(), tierfs_plugin_api::ABI_VERSION);
//! let vtable = unsafe { &*tierfs_plugin_entry() };
//! let name = unsafe { std::ffi::CStr::from_ptr(vtable.type_name) };
//! assert_eq!(name.to_str(), Ok("scratch"));
//! # }
//! ```
//!
//! # The ABI
//!
//! The library exports two `extern "C"` symbols:
//!
//! 1. `tierfs_plugin_abi_version() -> u32` ([`ABI_VERSION_SYMBOL`]). The
//!    host looks it up and calls it before touching anything else, and
//!    refuses the library unless it returns a version from
//!    [`MIN_ABI_VERSION`] to the host's [`ABI_VERSION`].
//! 2. `tierfs_plugin_entry() -> *const PluginVTable` ([`ENTRY_SYMBOL`]):
//!    a static [`PluginVTable`] naming the backend type and holding its
//!    functions.
//!
//! The version changes whenever [`abi`] changes. A change that only
//! appends optional vtable entries or status codes keeps older plugins
//! loadable (the host takes the new entries as absent and falls back:
//! v2 added `set_metadata`, which a v1 plugin lacks); any other change
//! raises [`MIN_ABI_VERSION`] too.
//!
//! Data crosses the boundary as [`HostBytes`] (borrowed from the host for
//! one call) and [`PluginBuffer`]s (allocated by the plugin, returned to its
//! `free_buffer`). Structured data is JSON: settings, metadata maps, list
//! pages; a batch is a JSON list of operations plus the values back to back
//! in one byte buffer. Every fallible function returns a [`PluginStatus`]
//! mirroring TierFS's error kinds and fills a [`RawError`] with a message.
//! [`abi`] documents each function, the encodings, ownership and threading:
//! **the host calls an instance's functions concurrently from several
//! threads**, so instances must be thread-safe (`Send + Sync`).
//!
//! The shims [`export_plugin!`] generates catch every panic, so none
//! crosses the boundary; a panic becomes an `Unavailable` error.
#![deny(missing_docs)]

pub mod abi;
mod backend;
mod error;
pub mod json;
mod shim;
mod types;

pub use abi::{
    capability, HostBytes, PluginBuffer, PluginStatus, PluginVTable, RawError, RawStat, ABI_VERSION,
    ABI_VERSION_SYMBOL, ENTRY_SYMBOL, MIN_ABI_VERSION, PUT_IF_NOT_EXISTS,
};
pub use backend::{BufferedWriter, PluginBackend, PluginResult, PluginWriter};
pub use error::{PluginError, PluginErrorKind};
pub use types::{
    decode_batch, metadata_from_json, metadata_to_json, BatchOp, Capabilities, CreateContext, ListEntry,
    ListPage, ListPageBuilder, ListRequest, Metadata, MetadataChanges, ObjectStat, Settings,
    DEFAULT_LIST_LIMIT,
};

/// Items the [`export_plugin!`] expansion uses; not a stable interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::shim::{is_valid_type_name, vtable};
}

/// Exports a [`PluginBackend`] as a TierFS plugin: generates
/// `tierfs_plugin_abi_version`, `tierfs_plugin_entry` and every `extern "C"`
/// shim of the vtable.
///
/// `export_plugin!(TypeName, "type_name")` registers the backend type
/// `type_name` (1 to 64 of `a-z A-Z 0-9 _ -`, checked at compile time).
/// Use it once per library, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($backend:ty, $type_name:literal) => {
        const _: () = ::std::assert!(
            $crate::__private::is_valid_type_name($type_name),
            "a backend type name is 1 to 64 of a-z A-Z 0-9 _ -"
        );

        /// The TierFS plugin ABI version this library was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn tierfs_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        /// The vtable of this library's TierFS backend type.
        #[unsafe(no_mangle)]
        pub extern "C" fn tierfs_plugin_entry() -> *const $crate::PluginVTable {
            static VTABLE: $crate::PluginVTable =
                $crate::__private::vtable::<$backend>(::std::concat!($type_name, "\0"));
            &VTABLE
        }
    };
}
