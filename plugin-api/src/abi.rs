//! The raw C ABI: `#[repr(C)]` types, status codes and the vtable.
//!
//! Everything here is what crosses the library boundary; a plugin written in
//! C mirrors these declarations. Rust plugin authors use
//! [`export_plugin!`](crate::export_plugin) instead and never touch them.
//!
//! # Ownership
//!
//! - [`HostBytes`] are borrowed from the host for the duration of one call.
//!   A null `ptr` means "absent" (only where a parameter says so); an empty
//!   slice has a non-null `ptr` and `len` 0.
//! - [`PluginBuffer`]s are allocated by the plugin and handed to the host,
//!   which returns each one exactly once to [`PluginVTable::free_buffer`].
//!   An empty buffer (null `ptr`) needs no freeing, but freeing it is allowed.
//! - Out-parameters are initialised by the host to empty values; a plugin
//!   writes them only when it returns [`PluginStatus::OK`], and writes the
//!   [`RawError`] only when it returns anything else.
//!
//! # Threads
//!
//! The host calls the functions of one instance concurrently from several
//! threads, so an instance must be safe to share (`Send + Sync` in Rust
//! terms). A write handle is used by one thread at a time, though not always
//! the same thread. `free_buffer` may run on any thread, also after the
//! instance that made the buffer was destroyed. `destroy` is called once,
//! after every other call on the instance has returned and every write
//! handle was finished or aborted. The library stays loaded as long as the
//! host holds anything from it.

use std::ffi::{c_char, c_void};

/// The ABI version this crate describes. A host accepts a library whose
/// [`ABI_VERSION_SYMBOL`] returns a version from [`MIN_ABI_VERSION`] to this
/// one, and refuses any other.
///
/// Versions only ever append entries to [`PluginVTable`]; a host reads a
/// vtable of an older version up to its last entry and takes the entries
/// added later as absent. Version 2 added `set_metadata` and the
/// `CONFLICT` status.
pub const ABI_VERSION: u32 = 2;

/// The oldest ABI version a host of this crate's version still loads.
pub const MIN_ABI_VERSION: u32 = 1;

/// Name of the exported `extern "C" fn() -> u32` returning the library's
/// ABI version. The host looks it up and calls it before anything else.
pub const ABI_VERSION_SYMBOL: &str = "tierfs_plugin_abi_version";

/// Name of the exported `extern "C" fn() -> *const PluginVTable`.
pub const ENTRY_SYMBOL: &str = "tierfs_plugin_entry";

/// Type of [`ABI_VERSION_SYMBOL`].
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// Type of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginVTable;

/// Bits of the capability mask returned by [`PluginVTable::capabilities`];
/// each mirrors a field of TierFS's `Capabilities`.
pub mod capability {
    /// `batch` applies every operation or none.
    pub const ATOMIC_BATCH: u64 = 1 << 0;
    /// `get_range` reads only the requested bytes.
    pub const RANGE_READ: u64 = 1 << 1;
    /// `rename` moves a key atomically.
    pub const RENAME: u64 = 1 << 2;
    /// Acknowledged writes survive a restart of the process.
    pub const PERSISTENT: u64 = 1 << 3;
    /// The [`PUT_IF_NOT_EXISTS`](super::PUT_IF_NOT_EXISTS) flag is honoured atomically.
    pub const CONDITIONAL_PUT: u64 = 1 << 4;
    /// Streamed writes do not hold the whole value in memory.
    pub const STREAMING: u64 = 1 << 5;
    /// Other hosts using the same store see the values (a network service).
    pub const SHARED: u64 = 1 << 6;
}

/// Flag of `put` and `write_begin`: fail with
/// [`PluginStatus::ALREADY_EXISTS`] if the key exists.
pub const PUT_IF_NOT_EXISTS: u32 = 1;

/// Bytes borrowed from the host for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostBytes {
    /// First byte; null means "absent" where the parameter allows it.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl HostBytes {
    /// Borrows `bytes` (never absent, even when empty).
    pub fn new(bytes: &[u8]) -> Self {
        HostBytes { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// The absent value (a null pointer).
    pub const fn absent() -> Self {
        HostBytes { ptr: std::ptr::null(), len: 0 }
    }

    /// Whether this is the absent value.
    pub fn is_absent(&self) -> bool {
        self.ptr.is_null()
    }

    /// The bytes; absent reads as empty.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or point to `len` readable bytes that stay valid
    /// and unchanged for `'a`.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Bytes allocated by the plugin and owned by whoever holds the struct; the
/// host gives each one back to [`PluginVTable::free_buffer`] exactly once.
///
/// A Rust plugin builds one from a `Vec<u8>` (`ptr`, `len` and `capacity`
/// are the vector's raw parts); a C plugin may use `capacity` for anything
/// its `free_buffer` needs.
#[repr(C)]
#[derive(Debug)]
pub struct PluginBuffer {
    /// First byte, or null for an empty buffer.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocation size, for the plugin's `free_buffer`.
    pub capacity: usize,
}

impl PluginBuffer {
    /// An empty buffer that owns nothing.
    pub const fn empty() -> Self {
        PluginBuffer { ptr: std::ptr::null_mut(), len: 0, capacity: 0 }
    }

    /// Hands `bytes` over as a buffer; [`PluginBuffer::into_vec`] in the
    /// same library takes it back.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.capacity() == 0 {
            return PluginBuffer::empty();
        }
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        PluginBuffer { ptr: bytes.as_mut_ptr(), len: bytes.len(), capacity: bytes.capacity() }
    }

    /// Takes back a buffer made by [`PluginBuffer::from_vec`].
    ///
    /// # Safety
    ///
    /// The buffer must come from `from_vec` in this same library (same
    /// allocator) and not have been freed.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the caller guarantees these are the raw parts of a Vec<u8>
        // allocated by this library's allocator.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.capacity) }
    }

    /// Whether the buffer holds no allocation.
    pub fn is_empty(&self) -> bool {
        self.ptr.is_null() || self.len == 0
    }

    /// The bytes.
    ///
    /// # Safety
    ///
    /// The buffer must be valid (made by its plugin and not yet freed).
    pub unsafe fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: a valid buffer has `len` initialised bytes at `ptr`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// The result of every fallible call. The values mirror TierFS's
/// `ErrorKind`; the host treats unknown values as
/// [`PluginStatus::UNAVAILABLE`].
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PluginStatus(pub i32);

impl PluginStatus {
    /// Success; out-parameters are written.
    pub const OK: PluginStatus = PluginStatus(0);
    /// The key does not exist.
    pub const NOT_FOUND: PluginStatus = PluginStatus(1);
    /// The backend refuses the operation.
    pub const PERMISSION_DENIED: PluginStatus = PluginStatus(2);
    /// The key is not acceptable to the backend.
    pub const INVALID_KEY: PluginStatus = PluginStatus(3);
    /// An argument other than the key is wrong.
    pub const INVALID_INPUT: PluginStatus = PluginStatus(4);
    /// The key exists and the operation required that it did not.
    pub const ALREADY_EXISTS: PluginStatus = PluginStatus(5);
    /// The backend cannot do this.
    pub const UNSUPPORTED: PluginStatus = PluginStatus(6);
    /// The backend is down or failed at I/O.
    pub const UNAVAILABLE: PluginStatus = PluginStatus(7);
    /// The backend's settings are wrong (from `create`).
    pub const CONFIG: PluginStatus = PluginStatus(8);
    /// The device or quota that holds the data is full: the backend is up,
    /// reads and deletes go on, writes work again once space is freed.
    /// Hosts older than this status report it as an unknown status, of
    /// the kind [`PluginStatus::UNAVAILABLE`] maps to.
    pub const OUT_OF_SPACE: PluginStatus = PluginStatus(9);
    /// A condition on the value's current state failed (`set_metadata`'s
    /// `if_version`): it changed since the caller read it. ABI 2.
    pub const CONFLICT: PluginStatus = PluginStatus(10);

    /// Whether this is [`PluginStatus::OK`].
    pub fn is_ok(self) -> bool {
        self == PluginStatus::OK
    }
}

/// What a failed call reports besides its status.
#[repr(C)]
#[derive(Debug)]
pub struct RawError {
    /// UTF-8 message saying what went wrong and what to do.
    pub message: PluginBuffer,
    /// UTF-8 key the error is about, when it differs from the call's key
    /// (for example the failing operation of a batch); empty otherwise.
    pub key: PluginBuffer,
    /// Whether the same call may succeed if tried again.
    pub retryable: bool,
}

impl RawError {
    /// No error.
    pub const fn empty() -> Self {
        RawError { message: PluginBuffer::empty(), key: PluginBuffer::empty(), retryable: false }
    }
}

/// What `stat`, `put`, `get_range` and `write_finish` report about a value.
#[repr(C)]
#[derive(Debug)]
pub struct RawStat {
    /// Size of the value in bytes.
    pub size: u64,
    /// Last modification, in nanoseconds since the Unix epoch.
    pub modified_nanos: u64,
    /// UTF-8 version string; changes whenever the value changes.
    pub version: PluginBuffer,
    /// The metadata map as a JSON object of strings, e.g. `{"mode":"644"}`.
    pub metadata_json: PluginBuffer,
}

impl RawStat {
    /// A zeroed stat with empty buffers, for the host to pass as an out-parameter.
    pub const fn empty() -> Self {
        RawStat {
            size: 0,
            modified_nanos: 0,
            version: PluginBuffer::empty(),
            metadata_json: PluginBuffer::empty(),
        }
    }
}

/// An opaque backend instance made by [`PluginVTable::create`].
pub type Instance = *mut c_void;

/// An opaque streamed write made by [`PluginVTable::write_begin`].
pub type WriteHandle = *mut c_void;

/// The functions of one backend type, returned by [`ENTRY_SYMBOL`].
///
/// Keys arrive validated by TierFS (UTF-8, `/`-separated, no empty, `.` or
/// `..` segments). Every function returning [`PluginStatus`] takes a
/// `*mut RawError` last. Entries marked *optional* may be `None`; the host
/// refuses a vtable missing any other entry.
///
/// Encodings used by the JSON parameters:
///
/// - **settings** (`create`): the backend's configuration table without
///   `type`, as a JSON object (`{"path":"/var/lib/x.log"}`).
/// - **metadata**: a JSON object of strings.
/// - **list page** (`list` output):
///   `{"entries":[{"key":"a/1","size":3,"modified_nanos":1,"version":"7","metadata":{}},
///   {"prefix":"a/sub/"}],"next":"a/sub/"}`; `next` is `null` or missing on
///   the last page.
/// - **metadata changes** (`set_metadata` input):
///   `{"set":{"posix.mode":"100600"},"remove":["user.tag"],"replace":false}`;
///   removals apply first, and `replace` drops every entry before `set`.
/// - **batch** (`batch` input): `ops_json` is a JSON array of
///   `{"op":"put","key":K,"metadata":{..},"len":N,"if_not_exists":false}` and
///   `{"op":"delete","key":K}`; `values` holds the values of the puts back to
///   back in operation order, each `len` bytes long, so values need no
///   encoding. A put with `if_not_exists` on an existing key fails the whole
///   batch with [`PluginStatus::ALREADY_EXISTS`].
#[repr(C)]
#[derive(Debug)]
#[allow(clippy::type_complexity)]
pub struct PluginVTable {
    /// Must equal [`ABI_VERSION`], like the exported version function.
    pub abi_version: u32,
    /// NUL-terminated UTF-8 type name used in configuration (`type = "..."`):
    /// 1 to 64 of `a-z A-Z 0-9 _ -`. Static for the library's lifetime.
    pub type_name: *const c_char,
    /// Frees a buffer the plugin handed out.
    pub free_buffer: Option<unsafe extern "C" fn(buffer: PluginBuffer)>,
    /// Makes an instance from JSON `settings`, the backend's configured
    /// `name`, and `base_dir`, the directory of the configuration file
    /// (absent without one) against which relative paths resolve. Bad
    /// settings fail with [`PluginStatus::CONFIG`] and a message naming the field.
    pub create: Option<
        unsafe extern "C" fn(
            settings_json: HostBytes,
            name: HostBytes,
            base_dir: HostBytes,
            out_instance: *mut Instance,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Destroys an instance.
    pub destroy: Option<unsafe extern "C" fn(instance: Instance)>,
    /// The instance's [`capability`] bits.
    pub capabilities: Option<unsafe extern "C" fn(instance: Instance) -> u64>,
    /// The whole value of `key`.
    pub get: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            out_value: *mut PluginBuffer,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Bytes `start..end` of the value, clamped to its size (`start <= end`
    /// always holds), and the stat of the value they came from.
    pub get_range: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            start: u64,
            end: u64,
            out_value: *mut PluginBuffer,
            out_stat: *mut RawStat,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Stores `value` with JSON `metadata`, replacing both; `flags` may hold
    /// [`PUT_IF_NOT_EXISTS`]. Durable when it returns.
    pub put: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            value: HostBytes,
            metadata_json: HostBytes,
            flags: u32,
            out_stat: *mut RawStat,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Removes `key`; a missing key succeeds.
    pub delete: Option<
        unsafe extern "C" fn(instance: Instance, key: HostBytes, error: *mut RawError) -> PluginStatus,
    >,
    /// Size, modification time, version and metadata of `key`.
    pub stat: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            out_stat: *mut RawStat,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// One page of keys under `prefix` in byte order, as JSON (see above).
    /// Non-recursive listings group deeper keys at the next `/`;
    /// `start_after` (absent on the first page) is the previous page's
    /// `next`; `limit` is at least 1.
    pub list: Option<
        unsafe extern "C" fn(
            instance: Instance,
            prefix: HostBytes,
            recursive: bool,
            start_after: HostBytes,
            limit: u64,
            out_page_json: *mut PluginBuffer,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// *Optional.* Applies the encoded operations (see above): all of them,
    /// or none when the instance has [`capability::ATOMIC_BATCH`].
    pub batch: Option<
        unsafe extern "C" fn(
            instance: Instance,
            ops_json: HostBytes,
            values: HostBytes,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Starts a streamed write of `key`; nothing is visible until
    /// `write_finish` succeeds.
    pub write_begin: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            metadata_json: HostBytes,
            flags: u32,
            out_handle: *mut WriteHandle,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Appends `chunk`. On failure the handle stays open until finished or aborted.
    pub write_chunk: Option<
        unsafe extern "C" fn(
            instance: Instance,
            handle: WriteHandle,
            chunk: HostBytes,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Publishes the value atomically and durably; consumes the handle
    /// whatever the outcome.
    pub write_finish: Option<
        unsafe extern "C" fn(
            instance: Instance,
            handle: WriteHandle,
            out_stat: *mut RawStat,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// Discards the write, leaving the previous value; consumes the handle.
    pub write_abort: Option<
        unsafe extern "C" fn(instance: Instance, handle: WriteHandle, error: *mut RawError) -> PluginStatus,
    >,
    /// *Optional.* Moves value and metadata of `from` to `to` atomically,
    /// replacing `to`; a missing `from` is [`PluginStatus::NOT_FOUND`].
    pub rename: Option<
        unsafe extern "C" fn(
            instance: Instance,
            from: HostBytes,
            to: HostBytes,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
    /// *Optional.* Makes every acknowledged write durable.
    pub sync: Option<unsafe extern "C" fn(instance: Instance, error: *mut RawError) -> PluginStatus>,
    /// *Optional; ABI 2.* Applies the JSON `changes_json` (see above) to the
    /// metadata of `key` without rewriting its value, atomically and
    /// durably, and writes the new stat. With `if_version` present, only
    /// while the value's version is that string, else
    /// [`PluginStatus::CONFLICT`]; a missing key is
    /// [`PluginStatus::NOT_FOUND`]. Absent (or answering
    /// [`PluginStatus::UNSUPPORTED`]), the host rewrites the value with the
    /// new metadata through `get_range`/`write_*` instead.
    pub set_metadata: Option<
        unsafe extern "C" fn(
            instance: Instance,
            key: HostBytes,
            changes_json: HostBytes,
            if_version: HostBytes,
            out_stat: *mut RawStat,
            error: *mut RawError,
        ) -> PluginStatus,
    >,
}

// SAFETY: a vtable is immutable after construction: function pointers and a
// pointer to a static string, both valid for the library's lifetime.
unsafe impl Sync for PluginVTable {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for PluginVTable {}
