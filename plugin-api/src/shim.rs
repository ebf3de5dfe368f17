//! The `extern "C"` shims [`export_plugin!`](crate::export_plugin) puts in
//! a plugin: each converts the raw arguments, calls the [`PluginBackend`],
//! converts the result, and catches any panic so none crosses the boundary.
//!
//! An instance is a `Box<Arc<T>>` behind the opaque pointer (the `Arc` lets
//! default streamed writes hold the backend); a write handle is a
//! `Box<Box<dyn PluginWriter>>`.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use crate::abi::{
    HostBytes, Instance, PluginBuffer, PluginStatus, PluginVTable, RawError, RawStat, WriteHandle,
    ABI_VERSION, PUT_IF_NOT_EXISTS,
};
use crate::backend::{PluginBackend, PluginResult, PluginWriter};
use crate::error::{PluginError, PluginErrorKind};
use crate::types::{
    decode_batch, metadata_from_json, metadata_to_json, CreateContext, ListRequest, MetadataChanges,
    ObjectStat, Settings,
};

/// Whether `name` is a valid backend type name: 1 to 64 of
/// `a-z A-Z 0-9 _ -`. Usable in constants, so `export_plugin!` checks the
/// name at compile time.
pub const fn is_valid_type_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 64 {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// The vtable of backend type `T`; `type_name_nul` is the type name
/// followed by a NUL byte. Used by `export_plugin!`.
pub const fn vtable<T: PluginBackend>(type_name_nul: &'static str) -> PluginVTable {
    PluginVTable {
        abi_version: ABI_VERSION,
        type_name: type_name_nul.as_ptr() as *const c_char,
        free_buffer: Some(free_buffer),
        create: Some(create::<T>),
        destroy: Some(destroy::<T>),
        capabilities: Some(capabilities::<T>),
        get: Some(get::<T>),
        get_range: Some(get_range::<T>),
        put: Some(put::<T>),
        delete: Some(delete::<T>),
        stat: Some(stat::<T>),
        list: Some(list::<T>),
        batch: Some(batch::<T>),
        write_begin: Some(write_begin::<T>),
        write_chunk: Some(write_chunk),
        write_finish: Some(write_finish),
        write_abort: Some(write_abort),
        rename: Some(rename::<T>),
        sync: Some(sync::<T>),
        set_metadata: Some(set_metadata::<T>),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Writes `e` to `error` and returns its status.
fn report(error: *mut RawError, e: PluginError) -> PluginStatus {
    let status = e.kind().status();
    if !error.is_null() {
        let raw = RawError {
            message: PluginBuffer::from_vec(e.message().as_bytes().to_vec()),
            key: PluginBuffer::from_vec(e.key().map(|k| k.as_bytes().to_vec()).unwrap_or_default()),
            retryable: e.is_retryable(),
        };
        // SAFETY: the host passes a valid, writable `RawError` holding no
        // allocation (see the ABI's ownership rules).
        unsafe { error.write(raw) };
    }
    status
}

/// Runs `f`, turning its error or panic into a status and a `RawError`.
fn guard(error: *mut RawError, f: impl FnOnce() -> PluginResult<()>) -> PluginStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => PluginStatus::OK,
        Ok(Err(e)) => report(error, e),
        Err(payload) => report(
            error,
            PluginError::new(
                PluginErrorKind::Unavailable,
                format!("the plugin panicked: {}; this is a bug in the plugin", panic_message(&*payload)),
            ),
        ),
    }
}

/// Writes `value` to an out-parameter.
///
/// # Safety
///
/// `out` must be null or valid for writes; it holds nothing to drop.
unsafe fn put_out<T>(out: *mut T, value: T) -> PluginResult<()> {
    if out.is_null() {
        return Err(PluginError::invalid_input("the host passed a null out-parameter"));
    }
    // SAFETY: non-null and valid for writes per the caller.
    unsafe { out.write(value) };
    Ok(())
}

fn raw_stat(stat: ObjectStat) -> RawStat {
    RawStat {
        size: stat.size,
        modified_nanos: stat.modified_nanos(),
        version: PluginBuffer::from_vec(stat.version.into_bytes()),
        metadata_json: PluginBuffer::from_vec(metadata_to_json(&stat.metadata).to_string().into_bytes()),
    }
}

/// # Safety
///
/// `bytes` must satisfy [`HostBytes::as_slice`].
unsafe fn host_str<'a>(bytes: HostBytes, what: &str, kind: PluginErrorKind) -> PluginResult<&'a str> {
    // SAFETY: per the caller.
    let slice = unsafe { bytes.as_slice() };
    std::str::from_utf8(slice).map_err(|_| PluginError::new(kind, format!("the {what} is not UTF-8")))
}

/// # Safety
///
/// `bytes` must satisfy [`HostBytes::as_slice`].
unsafe fn host_key<'a>(bytes: HostBytes) -> PluginResult<&'a str> {
    // SAFETY: per the caller.
    unsafe { host_str(bytes, "key", PluginErrorKind::InvalidKey) }
}

/// # Safety
///
/// `instance` must come from [`create`] with the same `T` and be alive.
unsafe fn backend<'a, T: PluginBackend>(instance: Instance) -> &'a Arc<T> {
    // SAFETY: per the caller, `instance` is a live `Box<Arc<T>>`.
    unsafe { &*(instance as *const Arc<T>) }
}

unsafe extern "C" fn free_buffer(buffer: PluginBuffer) {
    // SAFETY: the host returns buffers this library made with `from_vec`.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { buffer.into_vec() })));
}

unsafe extern "C" fn create<T: PluginBackend>(
    settings_json: HostBytes,
    name: HostBytes,
    base_dir: HostBytes,
    out_instance: *mut Instance,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host's arguments are valid for this call.
        let settings = Settings::parse(unsafe { settings_json.as_slice() })?;
        // SAFETY: as above.
        let name = unsafe { host_str(name, "backend name", PluginErrorKind::Config) }?.to_owned();
        let base_dir = match base_dir.is_absent() {
            true => None,
            // SAFETY: as above.
            false => {
                Some(PathBuf::from(unsafe { host_str(base_dir, "base directory", PluginErrorKind::Config) }?))
            }
        };
        let backend = T::create(&settings, &CreateContext { name, base_dir })?;
        let instance = Box::into_raw(Box::new(Arc::new(backend))) as Instance;
        // SAFETY: the host passes a writable out-parameter.
        unsafe { put_out(out_instance, instance) }.inspect_err(|_| {
            // SAFETY: just made above and never shared.
            drop(unsafe { Box::from_raw(instance as *mut Arc<T>) });
        })
    })
}

unsafe extern "C" fn destroy<T: PluginBackend>(instance: Instance) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the host destroys each instance once, after all other calls.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(instance as *mut Arc<T>) })));
}

unsafe extern "C" fn capabilities<T: PluginBackend>(instance: Instance) -> u64 {
    // SAFETY: the host passes a live instance of this type.
    catch_unwind(AssertUnwindSafe(|| unsafe { backend::<T>(instance) }.capabilities().to_bits())).unwrap_or(0)
}

unsafe extern "C" fn get<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    out_value: *mut PluginBuffer,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key) = unsafe { (backend::<T>(instance), host_key(key)?) };
        let value = backend.get(key)?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_value, PluginBuffer::from_vec(value)) }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn get_range<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    start: u64,
    end: u64,
    out_value: *mut PluginBuffer,
    out_stat: *mut RawStat,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key) = unsafe { (backend::<T>(instance), host_key(key)?) };
        if start > end {
            return Err(PluginError::invalid_input(format!("range {start}..{end} ends before it starts")));
        }
        let (value, stat) = backend.get_range(key, start, end)?;
        if out_value.is_null() || out_stat.is_null() {
            return Err(PluginError::invalid_input("the host passed a null out-parameter"));
        }
        // SAFETY: both out-parameters are non-null and writable.
        unsafe {
            put_out(out_value, PluginBuffer::from_vec(value))?;
            put_out(out_stat, raw_stat(stat))
        }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn put<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    value: HostBytes,
    metadata_json: HostBytes,
    flags: u32,
    out_stat: *mut RawStat,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key, value, metadata) =
            unsafe { (backend::<T>(instance), host_key(key)?, value.as_slice(), metadata_json.as_slice()) };
        let metadata = metadata_from_json(metadata)?;
        let stat = backend.put(key, value, metadata, flags & PUT_IF_NOT_EXISTS != 0)?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_stat, raw_stat(stat)) }
    })
}

unsafe extern "C" fn delete<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key) = unsafe { (backend::<T>(instance), host_key(key)?) };
        backend.delete(key)
    })
}

unsafe extern "C" fn stat<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    out_stat: *mut RawStat,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key) = unsafe { (backend::<T>(instance), host_key(key)?) };
        let stat = backend.stat(key)?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_stat, raw_stat(stat)) }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn list<T: PluginBackend>(
    instance: Instance,
    prefix: HostBytes,
    recursive: bool,
    start_after: HostBytes,
    limit: u64,
    out_page_json: *mut PluginBuffer,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, prefix) =
            unsafe { (backend::<T>(instance), host_str(prefix, "prefix", PluginErrorKind::InvalidKey)?) };
        let start_after = match start_after.is_absent() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { host_str(start_after, "start_after", PluginErrorKind::InvalidInput) }?),
        };
        let request = ListRequest {
            prefix: prefix.to_owned(),
            recursive,
            start_after: start_after.map(str::to_owned),
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
        };
        let page = backend.list(&request)?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_page_json, PluginBuffer::from_vec(page.to_json().into_bytes())) }
    })
}

unsafe extern "C" fn batch<T: PluginBackend>(
    instance: Instance,
    ops_json: HostBytes,
    values: HostBytes,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, ops_json, values) =
            unsafe { (backend::<T>(instance), ops_json.as_slice(), values.as_slice()) };
        backend.batch(decode_batch(ops_json, values)?)
    })
}

unsafe extern "C" fn write_begin<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    metadata_json: HostBytes,
    flags: u32,
    out_handle: *mut WriteHandle,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key, metadata) =
            unsafe { (backend::<T>(instance), host_key(key)?, metadata_json.as_slice()) };
        let metadata = metadata_from_json(metadata)?;
        let writer = T::begin_write(backend, key, metadata, flags & PUT_IF_NOT_EXISTS != 0)?;
        if out_handle.is_null() {
            let _ = writer.abort();
            return Err(PluginError::invalid_input("the host passed a null out-parameter"));
        }
        let handle = Box::into_raw(Box::new(writer)) as WriteHandle;
        // SAFETY: non-null, writable out-parameter from the host.
        unsafe { put_out(out_handle, handle) }
    })
}

/// # Safety
///
/// `handle` must come from [`write_begin`] and not be finished or aborted.
unsafe fn writer<'a>(handle: WriteHandle) -> PluginResult<&'a mut Box<dyn PluginWriter>> {
    if handle.is_null() {
        return Err(PluginError::invalid_input("the host passed a null write handle"));
    }
    // SAFETY: per the caller; one thread uses a handle at a time.
    Ok(unsafe { &mut *(handle as *mut Box<dyn PluginWriter>) })
}

/// # Safety
///
/// As [`writer`]; the handle is consumed.
unsafe fn take_writer(handle: WriteHandle) -> PluginResult<Box<dyn PluginWriter>> {
    if handle.is_null() {
        return Err(PluginError::invalid_input("the host passed a null write handle"));
    }
    // SAFETY: per the caller; the host never uses the handle again.
    Ok(*unsafe { Box::from_raw(handle as *mut Box<dyn PluginWriter>) })
}

unsafe extern "C" fn write_chunk(
    _instance: Instance,
    handle: WriteHandle,
    chunk: HostBytes,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live handle and a valid chunk.
        let (writer, chunk) = unsafe { (writer(handle)?, chunk.as_slice()) };
        writer.write(chunk)
    })
}

unsafe extern "C" fn write_finish(
    _instance: Instance,
    handle: WriteHandle,
    out_stat: *mut RawStat,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live handle and gives it up.
        let writer = unsafe { take_writer(handle)? };
        let stat = writer.finish()?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_stat, raw_stat(stat)) }
    })
}

unsafe extern "C" fn write_abort(
    _instance: Instance,
    handle: WriteHandle,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live handle and gives it up.
        unsafe { take_writer(handle)? }.abort()
    })
}

unsafe extern "C" fn rename<T: PluginBackend>(
    instance: Instance,
    from: HostBytes,
    to: HostBytes,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, from, to) = unsafe { (backend::<T>(instance), host_key(from)?, host_key(to)?) };
        backend.rename(from, to)
    })
}

unsafe extern "C" fn sync<T: PluginBackend>(instance: Instance, error: *mut RawError) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance.
        unsafe { backend::<T>(instance) }.sync()
    })
}

unsafe extern "C" fn set_metadata<T: PluginBackend>(
    instance: Instance,
    key: HostBytes,
    changes_json: HostBytes,
    if_version: HostBytes,
    out_stat: *mut RawStat,
    error: *mut RawError,
) -> PluginStatus {
    guard(error, || {
        // SAFETY: the host passes a live instance and valid arguments.
        let (backend, key, changes) =
            unsafe { (backend::<T>(instance), host_key(key)?, changes_json.as_slice()) };
        let changes = MetadataChanges::from_json(changes)?;
        let if_version = match if_version.is_absent() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { host_str(if_version, "if_version", PluginErrorKind::InvalidInput) }?),
        };
        let stat = backend.set_metadata(key, &changes, if_version)?;
        // SAFETY: writable out-parameter from the host.
        unsafe { put_out(out_stat, raw_stat(stat)) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ListPage, Metadata};

    /// A backend whose `get` panics and whose other reads fail plainly.
    struct Grumpy;

    impl PluginBackend for Grumpy {
        fn create(settings: &Settings, context: &CreateContext) -> PluginResult<Self> {
            settings.expect_only(&["mood"])?;
            assert_eq!(context.name, "g");
            Ok(Grumpy)
        }
        fn capabilities(&self) -> crate::Capabilities {
            crate::Capabilities { range_read: true, ..Default::default() }
        }
        fn get(&self, _key: &str) -> PluginResult<Vec<u8>> {
            panic!("grumpy");
        }
        fn get_range(&self, key: &str, _start: u64, _end: u64) -> PluginResult<(Vec<u8>, ObjectStat)> {
            Err(PluginError::not_found().with_key(format!("{key}!")))
        }
        fn put(&self, _key: &str, value: &[u8], metadata: Metadata, _ine: bool) -> PluginResult<ObjectStat> {
            Ok(ObjectStat {
                size: value.len() as u64,
                modified: ObjectStat::time_from_nanos(42),
                version: "v1".into(),
                metadata,
            })
        }
        fn delete(&self, _key: &str) -> PluginResult<()> {
            Ok(())
        }
        fn stat(&self, _key: &str) -> PluginResult<ObjectStat> {
            Err(PluginError::not_found())
        }
        fn list(&self, _request: &ListRequest) -> PluginResult<ListPage> {
            Ok(ListPage::default())
        }
    }

    static VTABLE: PluginVTable = vtable::<Grumpy>("grumpy\0");

    fn take(buffer: PluginBuffer) -> String {
        // SAFETY: made by this library's `from_vec`.
        String::from_utf8(unsafe { buffer.into_vec() }).unwrap()
    }

    fn instance(settings: &str) -> (PluginStatus, Instance, RawError) {
        let mut out: Instance = std::ptr::null_mut();
        let mut error = RawError::empty();
        let create = VTABLE.create.unwrap();
        // SAFETY: valid arguments and out-parameters.
        let status = unsafe {
            create(
                HostBytes::new(settings.as_bytes()),
                HostBytes::new(b"g"),
                HostBytes::absent(),
                &mut out,
                &mut error,
            )
        };
        (status, out, error)
    }

    #[test]
    fn calls_through_the_vtable() {
        assert!(is_valid_type_name("grumpy") && !is_valid_type_name("no spaces") && !is_valid_type_name(""));
        let (status, _, error) = instance(r#"{"mod":1}"#);
        assert_eq!(status, PluginStatus::CONFIG);
        assert_eq!(take(error.message), "unknown field `mod`, expected `mood`");

        let (status, inst, _) = instance("{}");
        assert_eq!(status, PluginStatus::OK);
        // SAFETY: a live instance and valid arguments throughout.
        unsafe {
            assert_eq!(VTABLE.capabilities.unwrap()(inst), crate::capability::RANGE_READ);

            let mut error = RawError::empty();
            let mut value = PluginBuffer::empty();
            let status = VTABLE.get.unwrap()(inst, HostBytes::new(b"k"), &mut value, &mut error);
            assert_eq!(status, PluginStatus::UNAVAILABLE);
            let message = take(error.message);
            assert!(message.contains("the plugin panicked: grumpy"), "{message}");
            assert!(value.ptr.is_null());

            let mut error = RawError::empty();
            let (mut value, mut stat) = (PluginBuffer::empty(), RawStat::empty());
            let status = VTABLE.get_range.unwrap()(
                inst,
                HostBytes::new(b"k"),
                0,
                1,
                &mut value,
                &mut stat,
                &mut error,
            );
            assert_eq!(status, PluginStatus::NOT_FOUND);
            assert_eq!(take(error.key), "k!");

            let mut error = RawError::empty();
            let mut stat = RawStat::empty();
            let put = VTABLE.put.unwrap();
            let status = put(
                inst,
                HostBytes::new(b"k"),
                HostBytes::new(b"abc"),
                HostBytes::new(br#"{"m":"\u00e9"}"#),
                0,
                &mut stat,
                &mut error,
            );
            assert_eq!(status, PluginStatus::OK);
            assert_eq!((stat.size, stat.modified_nanos), (3, 42));
            assert_eq!(take(stat.version), "v1");
            assert_eq!(take(stat.metadata_json), r#"{"m":"é"}"#);

            let mut error = RawError::empty();
            let status = VTABLE.batch.unwrap()(inst, HostBytes::new(b"[]"), HostBytes::new(b""), &mut error);
            assert_eq!(status, PluginStatus::UNSUPPORTED);
            drop(take(error.message));

            // The default streamed write buffers, then puts.
            let mut error = RawError::empty();
            let mut handle: WriteHandle = std::ptr::null_mut();
            let begin = VTABLE.write_begin.unwrap();
            let status = begin(inst, HostBytes::new(b"k"), HostBytes::new(b""), 0, &mut handle, &mut error);
            assert_eq!(status, PluginStatus::OK);
            for chunk in [&b"ab"[..], b"cd"] {
                let status = VTABLE.write_chunk.unwrap()(inst, handle, HostBytes::new(chunk), &mut error);
                assert_eq!(status, PluginStatus::OK);
            }
            let mut stat = RawStat::empty();
            assert_eq!(VTABLE.write_finish.unwrap()(inst, handle, &mut stat, &mut error), PluginStatus::OK);
            assert_eq!(stat.size, 4);
            VTABLE.free_buffer.unwrap()(stat.version);
            VTABLE.free_buffer.unwrap()(stat.metadata_json);

            VTABLE.destroy.unwrap()(inst);
        }
    }
}
