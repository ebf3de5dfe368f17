//! Opening a plugin library: ABI check first, then the vtable.

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tierfs_plugin_api::abi::{AbiVersionFn, EntryFn, Instance, WriteHandle};
use tierfs_plugin_api::{
    HostBytes, PluginBuffer, PluginStatus, PluginVTable, RawError, RawStat, ABI_VERSION, ABI_VERSION_SYMBOL,
    ENTRY_SYMBOL, MIN_ABI_VERSION,
};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::{Metadata, ObjectMeta};

/// The entries of a plugin's vtable, checked present at load time.
#[derive(Clone, Copy)]
#[allow(clippy::type_complexity)]
pub(super) struct Functions {
    pub free_buffer: unsafe extern "C" fn(PluginBuffer),
    pub create:
        unsafe extern "C" fn(HostBytes, HostBytes, HostBytes, *mut Instance, *mut RawError) -> PluginStatus,
    pub destroy: unsafe extern "C" fn(Instance),
    pub capabilities: unsafe extern "C" fn(Instance) -> u64,
    pub get: unsafe extern "C" fn(Instance, HostBytes, *mut PluginBuffer, *mut RawError) -> PluginStatus,
    pub get_range: unsafe extern "C" fn(
        Instance,
        HostBytes,
        u64,
        u64,
        *mut PluginBuffer,
        *mut RawStat,
        *mut RawError,
    ) -> PluginStatus,
    pub put: unsafe extern "C" fn(
        Instance,
        HostBytes,
        HostBytes,
        HostBytes,
        u32,
        *mut RawStat,
        *mut RawError,
    ) -> PluginStatus,
    pub delete: unsafe extern "C" fn(Instance, HostBytes, *mut RawError) -> PluginStatus,
    pub stat: unsafe extern "C" fn(Instance, HostBytes, *mut RawStat, *mut RawError) -> PluginStatus,
    pub list: unsafe extern "C" fn(
        Instance,
        HostBytes,
        bool,
        HostBytes,
        u64,
        *mut PluginBuffer,
        *mut RawError,
    ) -> PluginStatus,
    pub batch: Option<unsafe extern "C" fn(Instance, HostBytes, HostBytes, *mut RawError) -> PluginStatus>,
    pub write_begin: unsafe extern "C" fn(
        Instance,
        HostBytes,
        HostBytes,
        u32,
        *mut WriteHandle,
        *mut RawError,
    ) -> PluginStatus,
    pub write_chunk: unsafe extern "C" fn(Instance, WriteHandle, HostBytes, *mut RawError) -> PluginStatus,
    pub write_finish:
        unsafe extern "C" fn(Instance, WriteHandle, *mut RawStat, *mut RawError) -> PluginStatus,
    pub write_abort: unsafe extern "C" fn(Instance, WriteHandle, *mut RawError) -> PluginStatus,
    pub rename: Option<unsafe extern "C" fn(Instance, HostBytes, HostBytes, *mut RawError) -> PluginStatus>,
    pub sync: Option<unsafe extern "C" fn(Instance, *mut RawError) -> PluginStatus>,
    pub set_metadata: Option<
        unsafe extern "C" fn(
            Instance,
            HostBytes,
            HostBytes,
            HostBytes,
            *mut RawStat,
            *mut RawError,
        ) -> PluginStatus,
    >,
}

/// A copy of the vtable at `vtable`, as a plugin of ABI `version` laid it
/// out: the entries that version has, and the later ones absent. Versions
/// only append entries, so an older vtable is a prefix of the current one.
///
/// # Safety
///
/// `vtable` must point to a valid vtable of ABI `version`, which is at most
/// [`ABI_VERSION`].
unsafe fn vtable_of_version(vtable: *const PluginVTable, version: u32) -> PluginVTable {
    let size = match version {
        1 => std::mem::offset_of!(PluginVTable, set_metadata),
        _ => std::mem::size_of::<PluginVTable>(),
    };
    // SAFETY: every field is an integer, a pointer or an `Option` of a
    // function pointer, for which all zeroes is valid (0, null, `None`).
    let mut copy: PluginVTable = unsafe { std::mem::zeroed() };
    // SAFETY: the caller guarantees `size` readable bytes at `vtable` (the
    // layout of its version), and `copy` is at least that large.
    unsafe { std::ptr::copy_nonoverlapping(vtable.cast::<u8>(), (&raw mut copy).cast::<u8>(), size) };
    copy
}

/// A loaded, checked plugin library.
pub(super) struct PluginLibrary {
    path: PathBuf,
    type_name: String,
    functions: Functions,
    // Dropped last: every function pointer above points into it.
    _library: libloading::Library,
}

impl fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLibrary").field("path", &self.path).field("type_name", &self.type_name).finish()
    }
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

impl PluginLibrary {
    /// Opens the library at `path`, checks its ABI version before looking
    /// at anything else, then reads and validates its vtable.
    pub fn open(path: &Path) -> Result<PluginLibrary> {
        let shown = path.display();
        let canonical = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(config_error(format!(
                    "no plugin library at {shown}; check the path (relative paths are taken from the \
                     configuration file's directory) and that the plugin was built"
                )))
            }
            Err(e) => return Err(config_error(format!("cannot read the plugin library {shown}: {e}"))),
        };
        if canonical.is_dir() {
            return Err(config_error(format!(
                "{shown} is a directory; name the plugin's shared library file (lib*.so) instead"
            )));
        }
        // SAFETY: loading a library runs its initialisers; naming a library
        // in the configuration is trusting it, like any plugin system.
        let library = unsafe { libloading::Library::new(&canonical) }.map_err(|e| {
            config_error(format!(
                "cannot load the plugin library {shown}: {e}; it must be a shared library built for this \
                 platform"
            ))
        })?;
        // SAFETY: the symbol's type is fixed by the plugin ABI.
        let abi_version = unsafe { library.get::<AbiVersionFn>(ABI_VERSION_SYMBOL) }.map_err(|_| {
            config_error(format!(
                "{shown} is not a TierFS plugin: it does not export `{ABI_VERSION_SYMBOL}`; build plugins \
                 with `tierfs_plugin_api::export_plugin!`"
            ))
        })?;
        // SAFETY: as above; the function takes nothing and returns a u32.
        let version = unsafe { abi_version() };
        if !(MIN_ABI_VERSION..=ABI_VERSION).contains(&version) {
            return Err(abi_mismatch(path, version));
        }
        // SAFETY: the symbol's type is fixed by the plugin ABI version just checked.
        let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) }.map_err(|_| {
            config_error(format!(
                "{shown} is not a complete TierFS plugin: it exports `{ABI_VERSION_SYMBOL}` but not \
                 `{ENTRY_SYMBOL}`; build plugins with `tierfs_plugin_api::export_plugin!`"
            ))
        })?;
        // SAFETY: as above.
        let vtable = unsafe { entry() };
        if vtable.is_null() {
            return Err(config_error(format!(
                "{shown}: `{ENTRY_SYMBOL}` returned no vtable; the plugin is broken"
            )));
        }
        // SAFETY: non-null, and the ABI says it points to a static vtable
        // that starts with its version in every version.
        let vtable_version = unsafe { (*vtable).abi_version };
        if vtable_version != version {
            return Err(abi_mismatch(path, vtable_version));
        }
        // SAFETY: as above, of the size its version defines.
        let vtable = unsafe { vtable_of_version(vtable, version) };
        let type_name = Self::type_name_of(path, &vtable)?;
        let functions = Self::functions_of(path, &vtable)?;
        Ok(PluginLibrary { path: path.to_owned(), type_name, functions, _library: library })
    }

    fn type_name_of(path: &Path, vtable: &PluginVTable) -> Result<String> {
        if vtable.type_name.is_null() {
            return Err(config_error(format!("{}: the plugin names no backend type", path.display())));
        }
        // SAFETY: the ABI makes `type_name` a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(vtable.type_name) };
        let name = name.to_str().map_err(|_| {
            config_error(format!("{}: the plugin's backend type name is not UTF-8", path.display()))
        })?;
        crate::config::validate_name(name).map_err(|why| {
            config_error(format!("{}: the plugin's backend type name {why}", path.display()))
        })?;
        Ok(name.to_owned())
    }

    fn functions_of(path: &Path, v: &PluginVTable) -> Result<Functions> {
        let missing = |what: &str| {
            config_error(format!(
                "{}: the plugin's vtable lacks `{what}`; rebuild the plugin against tierfs-plugin-api {ABI_VERSION}.x",
                path.display()
            ))
        };
        Ok(Functions {
            free_buffer: v.free_buffer.ok_or_else(|| missing("free_buffer"))?,
            create: v.create.ok_or_else(|| missing("create"))?,
            destroy: v.destroy.ok_or_else(|| missing("destroy"))?,
            capabilities: v.capabilities.ok_or_else(|| missing("capabilities"))?,
            get: v.get.ok_or_else(|| missing("get"))?,
            get_range: v.get_range.ok_or_else(|| missing("get_range"))?,
            put: v.put.ok_or_else(|| missing("put"))?,
            delete: v.delete.ok_or_else(|| missing("delete"))?,
            stat: v.stat.ok_or_else(|| missing("stat"))?,
            list: v.list.ok_or_else(|| missing("list"))?,
            batch: v.batch,
            write_begin: v.write_begin.ok_or_else(|| missing("write_begin"))?,
            write_chunk: v.write_chunk.ok_or_else(|| missing("write_chunk"))?,
            write_finish: v.write_finish.ok_or_else(|| missing("write_finish"))?,
            write_abort: v.write_abort.ok_or_else(|| missing("write_abort"))?,
            rename: v.rename,
            sync: v.sync,
            set_metadata: v.set_metadata,
        })
    }

    /// The backend type the library provides.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Where the library was loaded from, as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked vtable entries.
    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    /// Copies a plugin buffer and frees it.
    pub fn take_vec(&self, buffer: PluginBuffer) -> Vec<u8> {
        if buffer.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: a buffer the plugin handed out and nobody freed yet.
        let bytes = unsafe { buffer.as_slice() }.to_vec();
        // SAFETY: returned to its owner exactly once.
        unsafe { (self.functions.free_buffer)(buffer) };
        bytes
    }

    /// A plugin buffer as text (lossy), freed.
    pub fn take_string(&self, buffer: PluginBuffer) -> String {
        match String::from_utf8(self.take_vec(buffer)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// A plugin buffer as [`Bytes`] without copying: the buffer is freed,
    /// through the library kept loaded meanwhile, when the last clone drops.
    pub fn take_bytes(self: &Arc<Self>, buffer: PluginBuffer) -> Bytes {
        if buffer.is_empty() {
            drop(self.take_vec(buffer));
            return Bytes::new();
        }
        Bytes::from_owner(OwnedBuffer { library: self.clone(), buffer })
    }

    /// Converts a stat from the plugin (freeing its buffers).
    pub fn take_stat(&self, key: &Key, raw: RawStat) -> Result<ObjectMeta> {
        let version = self.take_string(raw.version);
        let metadata = self.take_vec(raw.metadata_json);
        let metadata: Metadata = if metadata.is_empty() {
            Metadata::new()
        } else {
            serde_json::from_slice(&metadata).map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("the plugin `{}` returned malformed metadata: {e}", self.type_name),
                )
            })?
        };
        Ok(ObjectMeta {
            key: key.clone(),
            size: raw.size,
            modified: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(raw.modified_nanos),
            version,
            metadata,
        })
    }

    /// Turns a call's status and error report into a `Result`, freeing the report.
    pub fn check(&self, status: PluginStatus, error: RawError) -> Result<()> {
        let message = self.take_string(error.message);
        let key = self.take_string(error.key);
        if status.is_ok() {
            return Ok(());
        }
        let kind = match status {
            PluginStatus::NOT_FOUND => ErrorKind::NotFound,
            PluginStatus::PERMISSION_DENIED => ErrorKind::PermissionDenied,
            PluginStatus::INVALID_KEY => ErrorKind::InvalidKey,
            PluginStatus::INVALID_INPUT => ErrorKind::InvalidInput,
            PluginStatus::ALREADY_EXISTS => ErrorKind::AlreadyExists,
            PluginStatus::UNSUPPORTED => ErrorKind::Unsupported,
            PluginStatus::UNAVAILABLE => ErrorKind::Unavailable,
            PluginStatus::CONFIG => ErrorKind::Config,
            PluginStatus::CONFLICT => ErrorKind::Conflict,
            PluginStatus::OUT_OF_SPACE => {
                // Not an outage: the health layer keeps the backend up and
                // every face reports ENOSPC (`Error::is_out_of_space`).
                let message = match message.is_empty() {
                    true => format!("the device or quota of the plugin `{}` is full", self.type_name),
                    false => message,
                };
                let full = std::io::Error::new(std::io::ErrorKind::StorageFull, message.clone());
                let mut err = Error::new(ErrorKind::Unavailable, message).with_source(full);
                if !key.is_empty() {
                    err = err.with_key(key);
                }
                return Err(err);
            }
            PluginStatus(other) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the plugin `{}` returned unknown status {other}: {message}; rebuild it against \
                         tierfs-plugin-api {ABI_VERSION}.x",
                        self.type_name
                    ),
                ))
            }
        };
        let message = match (message.is_empty(), kind) {
            (false, _) => message,
            (true, ErrorKind::NotFound) => "no such key".to_owned(),
            (true, _) => format!("the plugin `{}` gave no reason", self.type_name),
        };
        let mut err = Error::new(kind, message).retryable(error.retryable);
        if !key.is_empty() {
            err = err.with_key(key);
        }
        Err(err)
    }
}

fn abi_mismatch(path: &Path, version: u32) -> Error {
    config_error(format!(
        "{} was built for plugin ABI v{version}, this tierfs loads v{MIN_ABI_VERSION} to v{ABI_VERSION}; \
         rebuild the plugin against tierfs-plugin-api {ABI_VERSION}.x",
        path.display()
    ))
}

/// A plugin's buffer owned by a [`Bytes`].
struct OwnedBuffer {
    library: Arc<PluginLibrary>,
    buffer: PluginBuffer,
}

// SAFETY: the buffer is plain memory owned by this value alone; the ABI
// lets the host free buffers from any thread.
unsafe impl Send for OwnedBuffer {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for OwnedBuffer {}

impl AsRef<[u8]> for OwnedBuffer {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the buffer stays valid until `drop` frees it.
        unsafe { self.buffer.as_slice() }
    }
}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        let buffer = std::mem::replace(&mut self.buffer, PluginBuffer::empty());
        // SAFETY: freed exactly once, through the library that made it.
        unsafe { (self.library.functions.free_buffer)(buffer) };
    }
}
