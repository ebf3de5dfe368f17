//! [`Instance`]: one live plugin instance and every call into it, as safe
//! methods. All the adapter's `unsafe` is here: each call passes a live
//! instance, arguments that outlive the call and fresh out-parameters,
//! and takes ownership of what the plugin hands back. The methods block
//! (plugins are synchronous); callers run them on the blocking pool.

use std::ffi::c_void;
use std::sync::Arc;

use bytes::Bytes;
use tierfs_plugin_api::abi::{Instance as RawInstance, WriteHandle};
use tierfs_plugin_api::{HostBytes, PluginBuffer, PluginStatus, RawError, RawStat};

use super::loader::PluginLibrary;
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::storage::ObjectMeta;

/// One live plugin instance; destroyed when the last user drops it.
pub(super) struct Instance {
    ptr: RawInstance,
    library: Arc<PluginLibrary>,
}

// SAFETY: the plugin ABI requires instances to be usable from any thread,
// concurrently (see `tierfs_plugin_api::abi`).
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the last reference: no call on the instance is running and
        // every write handle's writer holds an `Arc` of it, so all are gone.
        unsafe { (self.library.functions().destroy)(self.ptr) };
    }
}

/// A streamed write in progress; `write_finish` or `write_abort` gives it up.
pub(super) struct Handle(WriteHandle);

// SAFETY: the plugin ABI lets a write handle be used from any thread, one
// call at a time, which its owner (a mutex in the writer) guarantees.
unsafe impl Send for Handle {}

fn key_bytes(key: &str) -> HostBytes {
    HostBytes::new(key.as_bytes())
}

impl Instance {
    /// Creates an instance of `library`'s type from JSON settings.
    pub fn create(
        library: Arc<PluginLibrary>,
        settings_json: &str,
        name: &str,
        base_dir: Option<&str>,
    ) -> Result<Instance> {
        let f = *library.functions();
        let mut ptr: RawInstance = std::ptr::null_mut();
        let mut error = RawError::empty();
        let base = base_dir.map_or(HostBytes::absent(), |d| HostBytes::new(d.as_bytes()));
        // SAFETY: arguments valid for the call; fresh out-parameters.
        let status = unsafe {
            (f.create)(HostBytes::new(settings_json.as_bytes()), key_bytes(name), base, &mut ptr, &mut error)
        };
        library.check(status, error)?;
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("the plugin `{}` reported success but made no instance", library.type_name()),
            ));
        }
        Ok(Instance { ptr, library })
    }

    /// The library the instance comes from.
    pub fn library(&self) -> &PluginLibrary {
        &self.library
    }

    /// The capability bits.
    pub fn capabilities(&self) -> u64 {
        // SAFETY: a live instance.
        unsafe { (self.library.functions().capabilities)(self.ptr) }
    }

    /// Calls a plugin function with a fresh error report, then checks it.
    fn call(&self, f: impl FnOnce(RawInstance, *mut RawError) -> PluginStatus) -> Result<()> {
        let mut error = RawError::empty();
        let status = f(self.ptr, &mut error);
        self.library.check(status, error)
    }

    /// The stat a call wrote, owned, once the call's outcome is known.
    fn stat_of(&self, key: &Key, raw: RawStat, called: Result<()>) -> Result<ObjectMeta> {
        let stat = self.library.take_stat(key, raw);
        called?;
        stat
    }

    pub fn get(&self, key: &Key) -> Result<Bytes> {
        let f = self.library.functions();
        let mut value = PluginBuffer::empty();
        // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
        let called = self.call(|p, e| unsafe { (f.get)(p, key_bytes(key), &mut value, e) });
        let value = self.library.take_bytes(value);
        called.map(|()| value)
    }

    /// Bytes `start..end` (clamped by the plugin) and the stat of the value
    /// they came from.
    pub fn get_range(&self, key: &Key, start: u64, end: u64) -> Result<(Bytes, ObjectMeta)> {
        let f = self.library.functions();
        let (mut value, mut stat) = (PluginBuffer::empty(), RawStat::empty());
        let called = self.call(|p, e| {
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameters.
            unsafe { (f.get_range)(p, key_bytes(key), start, end, &mut value, &mut stat, e) }
        });
        let value = self.library.take_bytes(value);
        let stat = self.library.take_stat(key, stat);
        called?;
        Ok((value, stat?))
    }

    pub fn put(&self, key: &Key, value: &[u8], metadata_json: &str, flags: u32) -> Result<ObjectMeta> {
        let f = self.library.functions();
        let mut stat = RawStat::empty();
        let metadata = HostBytes::new(metadata_json.as_bytes());
        let called = self.call(|p, e| {
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
            unsafe { (f.put)(p, key_bytes(key), HostBytes::new(value), metadata, flags, &mut stat, e) }
        });
        self.stat_of(key, stat, called)
    }

    pub fn delete(&self, key: &Key) -> Result<()> {
        let f = self.library.functions();
        // SAFETY: a live instance; arguments valid for the call.
        self.call(|p, e| unsafe { (f.delete)(p, key_bytes(key), e) })
    }

    pub fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let f = self.library.functions();
        let mut stat = RawStat::empty();
        // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
        let called = self.call(|p, e| unsafe { (f.stat)(p, key_bytes(key), &mut stat, e) });
        self.stat_of(key, stat, called)
    }

    /// One page of a listing, as the plugin's JSON.
    pub fn list(
        &self,
        prefix: &str,
        recursive: bool,
        start_after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let f = self.library.functions();
        let start_after = start_after.map_or(HostBytes::absent(), key_bytes);
        let mut page = PluginBuffer::empty();
        let called = self.call(|p, e| {
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
            unsafe { (f.list)(p, key_bytes(prefix), recursive, start_after, limit, &mut page, e) }
        });
        let page = self.library.take_vec(page);
        called.map(|()| page)
    }

    /// Whether the plugin applies batches.
    pub fn has_batch(&self) -> bool {
        self.library.functions().batch.is_some()
    }

    /// Applies an encoded batch (`Unsupported` if the plugin has no batches).
    pub fn batch(&self, ops_json: &[u8], values: &[u8]) -> Result<()> {
        let Some(batch) = self.library.functions().batch else {
            return Err(Error::new(ErrorKind::Unsupported, "this backend does not apply batches"));
        };
        // SAFETY: a live instance; arguments valid for the call.
        self.call(|p, e| unsafe { batch(p, HostBytes::new(ops_json), HostBytes::new(values), e) })
    }

    pub fn write_begin(&self, key: &Key, metadata_json: &str, flags: u32) -> Result<Handle> {
        let f = self.library.functions();
        let mut handle: WriteHandle = std::ptr::null_mut::<c_void>();
        let metadata = HostBytes::new(metadata_json.as_bytes());
        // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
        self.call(|p, e| unsafe { (f.write_begin)(p, key_bytes(key), metadata, flags, &mut handle, e) })?;
        if handle.is_null() {
            return Err(Error::new(ErrorKind::Unavailable, "the plugin reported success but made no writer"));
        }
        Ok(Handle(handle))
    }

    pub fn write_chunk(&self, handle: &Handle, chunk: &[u8]) -> Result<()> {
        let f = self.library.functions();
        // SAFETY: a live handle of this instance, borrowed by one caller at a time.
        self.call(|p, e| unsafe { (f.write_chunk)(p, handle.0, HostBytes::new(chunk), e) })
    }

    pub fn write_finish(&self, handle: Handle, key: &Key) -> Result<ObjectMeta> {
        let f = self.library.functions();
        let mut stat = RawStat::empty();
        // SAFETY: a live handle of this instance, given up here; fresh out-parameter.
        let called = self.call(|p, e| unsafe { (f.write_finish)(p, handle.0, &mut stat, e) });
        self.stat_of(key, stat, called)
    }

    pub fn write_abort(&self, handle: Handle) -> Result<()> {
        let f = self.library.functions();
        // SAFETY: a live handle of this instance, given up here.
        self.call(|p, e| unsafe { (f.write_abort)(p, handle.0, e) })
    }

    /// Whether the plugin renames atomically.
    pub fn has_rename(&self) -> bool {
        self.library.functions().rename.is_some()
    }

    pub fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let Some(rename) = self.library.functions().rename else {
            return Err(Error::new(ErrorKind::Unsupported, "this backend cannot rename atomically"));
        };
        // SAFETY: a live instance; arguments valid for the call.
        self.call(|p, e| unsafe { rename(p, key_bytes(from), key_bytes(to), e) })
    }

    /// Makes writes durable; a plugin without `sync` has nothing to do.
    pub fn sync(&self) -> Result<()> {
        match self.library.functions().sync {
            // SAFETY: a live instance.
            Some(sync) => self.call(|p, e| unsafe { sync(p, e) }),
            None => Ok(()),
        }
    }

    /// Whether the plugin has `set_metadata` (ABI 2).
    pub fn has_set_metadata(&self) -> bool {
        self.library.functions().set_metadata.is_some()
    }

    /// Applies JSON metadata changes (`Unsupported` without the entry).
    pub fn set_metadata(
        &self,
        key: &Key,
        changes_json: &str,
        if_version: Option<&str>,
    ) -> Result<ObjectMeta> {
        let Some(set_metadata) = self.library.functions().set_metadata else {
            return Err(Error::new(ErrorKind::Unsupported, "this plugin has no set_metadata"));
        };
        let version = if_version.map_or(HostBytes::absent(), key_bytes);
        let changes = HostBytes::new(changes_json.as_bytes());
        let mut stat = RawStat::empty();
        let called = self.call(|p, e| {
            // SAFETY: a live instance; arguments valid for the call; fresh out-parameter.
            unsafe { set_metadata(p, key_bytes(key), changes, version, &mut stat, e) }
        });
        self.stat_of(key, stat, called)
    }
}
