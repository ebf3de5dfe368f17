//! Running core futures for JavaScript: as promises (off the JavaScript
//! thread, on napi-rs's tokio runtime) or, for the sync twins, by blocking
//! the calling thread.
//!
//! Promises settle through one long-lived thread-safe function per
//! JavaScript thread (a `Bridge`) rather than one per call: a finished
//! operation queues its result and wakes the JavaScript thread only if no
//! wake-up is pending, and the JavaScript thread then settles every queued
//! promise in one go. Under many concurrent calls this costs one event-loop
//! wake-up per batch instead of creating and tearing down a thread-safe
//! function (an event-loop handle and a cleanup hook) per call.
//!
//! Invariants the `unsafe` blocks rely on:
//! - the bridge's thread-safe function is called only under `Bridge::inner`'s
//!   lock and only while `Inner::tsfn` is `Some`; the environment's cleanup
//!   hook takes it (under the same lock) before Node frees it, so no thread
//!   calls a freed function;
//! - deferreds, handle scopes, references and values are touched only on the
//!   JavaScript thread that owns the bridge (in [`promise`] and in
//!   `call_js`).

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::Arc;
use std::thread::ThreadId;

use futures::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{sys, Env, JsError, Status};
use parking_lot::Mutex;
use tierfs_core::{Error, ErrorKind};

use crate::error;

/// Turns a finished operation's value into a JavaScript value, on the
/// JavaScript thread.
type Settle = Box<dyn FnOnce(&Env) -> napi::Result<sys::napi_value> + Send>;

/// A promise waiting to settle: its deferred and how to produce its value.
struct Completion {
    deferred: Deferred,
    settle: Settle,
}

/// A `napi_deferred`; only ever used on its own JavaScript thread.
struct Deferred(sys::napi_deferred);

// SAFETY: the pointer travels through the tokio task and back to the
// JavaScript thread, which alone dereferences it (see the module invariants).
unsafe impl Send for Deferred {}

/// A `napi_threadsafe_function`, callable from any thread while alive.
#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: Node-API thread-safe functions exist to be called from other
// threads; liveness is guarded by `Bridge::inner` (module invariants).
unsafe impl Send for Tsfn {}

struct Inner {
    /// `None` once the environment is torn down.
    tsfn: Option<Tsfn>,
    queue: Vec<Completion>,
    /// A call of the thread-safe function is queued and will drain `queue`.
    scheduled: bool,
}

/// The way back to one JavaScript thread.
struct Bridge {
    inner: Mutex<Inner>,
}

impl Bridge {
    /// Queues `completion` and wakes the JavaScript thread unless a wake-up
    /// is already pending. After teardown the completion is dropped: there
    /// is no one left to tell.
    fn complete(&self, completion: Completion) {
        let mut inner = self.inner.lock();
        let Some(tsfn) = inner.tsfn else { return };
        inner.queue.push(completion);
        if !inner.scheduled {
            inner.scheduled = true;
            // SAFETY: `tsfn` is alive while `inner.tsfn` is `Some` and the lock is held.
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            if status != sys::Status::napi_ok {
                // Closing: the environment is going away.
                inner.queue.clear();
                inner.tsfn = None;
            }
        }
    }
}

/// The bridge of the current JavaScript thread and its count of pending
/// promises (the thread-safe function keeps the event loop alive only while
/// some promise is pending).
struct Local {
    env: sys::napi_env,
    bridge: Arc<Bridge>,
    pending: usize,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

fn status(s: sys::napi_status, what: &str) -> napi::Result<()> {
    if s == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(Status::from(s), format!("{what} failed")))
    }
}

/// The current thread's bridge, created on first use.
fn bridge(env: &Env) -> napi::Result<Arc<Bridge>> {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        if let Some(l) = local.as_ref() {
            if l.env == env.raw() {
                return Ok(l.bridge.clone());
            }
        }
        let bridge =
            Arc::new(Bridge { inner: Mutex::new(Inner { tsfn: None, queue: Vec::new(), scheduled: false }) });
        // One reference lives in the thread-safe function's context and one
        // in the cleanup hook; both are leaked on purpose (one small
        // allocation per JavaScript thread), so neither callback can see a
        // freed bridge.
        let context = Arc::into_raw(bridge.clone()) as *mut c_void;
        let mut name = ptr::null_mut();
        let mut tsfn = ptr::null_mut();
        // SAFETY: called on the JavaScript thread with its live `env`.
        unsafe {
            status(
                sys::napi_create_string_utf8(env.raw(), c"tierfs".as_ptr(), 6, &mut name),
                "creating the bridge name",
            )?;
            status(
                sys::napi_create_threadsafe_function(
                    env.raw(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    name,
                    0,
                    1,
                    ptr::null_mut(),
                    None,
                    context,
                    Some(call_js),
                    &mut tsfn,
                ),
                "creating the bridge",
            )?;
            status(sys::napi_unref_threadsafe_function(env.raw(), tsfn), "unreferencing the bridge")?;
            status(
                sys::napi_add_env_cleanup_hook(
                    env.raw(),
                    Some(teardown),
                    Arc::into_raw(bridge.clone()) as *mut c_void,
                ),
                "registering the bridge cleanup",
            )?;
        }
        bridge.inner.lock().tsfn = Some(Tsfn(tsfn));
        *local = Some(Local { env: env.raw(), bridge: bridge.clone(), pending: 0 });
        Ok(bridge)
    })
}

/// Counts a promise in (`delta` 1) or out (-1), keeping the event loop
/// alive exactly while some promise is pending.
fn track(env: sys::napi_env, delta: isize) {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let Some(l) = local.as_mut() else { return };
        let Some(tsfn) = l.bridge.inner.lock().tsfn else { return };
        let before = l.pending;
        l.pending = before.saturating_add_signed(delta);
        // SAFETY: on the JavaScript thread; the function is alive (`tsfn` was `Some`
        // and only this thread's cleanup hook clears it).
        unsafe {
            if before == 0 && l.pending > 0 {
                sys::napi_ref_threadsafe_function(env, tsfn.0);
            } else if before > 0 && l.pending == 0 {
                sys::napi_unref_threadsafe_function(env, tsfn.0);
            }
        }
    });
}

/// Environment teardown: nothing may call the thread-safe function after
/// this, and queued results are dropped.
unsafe extern "C" fn teardown(arg: *mut c_void) {
    // SAFETY: `arg` is the leaked `Arc<Bridge>` registered with this hook;
    // it is only borrowed here.
    let bridge = unsafe { &*(arg as *const Bridge) };
    let mut inner = bridge.inner.lock();
    inner.tsfn = None;
    inner.queue.clear();
    drop(inner);
    LOCAL.with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            *local = None;
        }
    });
}

/// Settles every queued promise, on the JavaScript thread.
unsafe extern "C" fn call_js(
    env: sys::napi_env,
    _callback: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() || context.is_null() {
        return; // the function is being torn down
    }
    // SAFETY: `context` is the leaked `Arc<Bridge>` given at creation.
    let bridge = unsafe { &*(context as *const Bridge) };
    let batch = {
        let mut inner = bridge.inner.lock();
        inner.scheduled = false;
        std::mem::take(&mut inner.queue)
    };
    let count = batch.len();
    let js_env = Env::from_raw(env);
    for completion in batch {
        // SAFETY: on the JavaScript thread inside a Node-API callback; each
        // deferred is settled exactly once, here.
        unsafe { settle_now(env, &js_env, completion) };
    }
    for _ in 0..count {
        track(env, -1);
    }
}

unsafe fn settle_now(env: sys::napi_env, js_env: &Env, completion: Completion) {
    let mut scope = ptr::null_mut();
    // SAFETY (whole function): called by `call_js` on the JavaScript thread.
    let opened = unsafe { sys::napi_open_handle_scope(env, &mut scope) } == sys::Status::napi_ok;
    match (completion.settle)(js_env) {
        Ok(value) => unsafe {
            sys::napi_resolve_deferred(env, completion.deferred.0, value);
        },
        Err(err) => unsafe {
            let mut value = JsError::from(err).into_value(env);
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            if pending {
                // A conversion failed and left an exception: reject with it.
                sys::napi_get_and_clear_last_exception(env, &mut value);
            }
            if value.is_null() {
                sys::napi_get_undefined(env, &mut value);
            }
            sys::napi_reject_deferred(env, completion.deferred.0, value);
        },
    }
    if opened {
        unsafe { sys::napi_close_handle_scope(env, scope) };
    }
}

/// `value` as a JavaScript value (for [`promise`]'s `convert`).
pub fn plain<T: ToNapiValue>(env: &Env, value: T) -> napi::Result<sys::napi_value> {
    // SAFETY: called on the JavaScript thread with its live `env`.
    unsafe { T::to_napi_value(env.raw(), value) }
}

/// Runs `fut` on the runtime and returns a promise that settles on the
/// JavaScript thread: resolved with `convert(value)`, or rejected with the
/// error object of [`error::to_js`]. A panic in the operation rejects with
/// `EIO` instead of leaving the promise pending. `V` is the type the promise
/// resolves to, for the generated declarations.
pub fn promise<'env, V, T, F, C>(env: &'env Env, fut: F, convert: C) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    F: Future<Output = tierfs_core::Result<T>> + Send + 'static,
    C: FnOnce(&Env, T) -> napi::Result<sys::napi_value> + Send + 'static,
{
    let bridge = bridge(env)?;
    let (deferred, promise) = new_promise(env)?;
    track(env.raw(), 1);
    submit(Box::pin(async move {
        let out = AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Error::new(
                ErrorKind::Unavailable,
                format!("internal error in tierfs ({what}); please report it"),
            ))
        });
        let settle: Settle = Box::new(move |env: &Env| match out {
            Ok(value) => convert(env, value),
            Err(err) => Err(error::to_js(env, &err)),
        });
        bridge.complete(Completion { deferred, settle });
    }));
    Ok(PromiseRaw::new(env.raw(), promise))
}

/// A pending promise and its deferred.
fn new_promise(env: &Env) -> napi::Result<(Deferred, sys::napi_value)> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: on the JavaScript thread with its live `env`.
    status(
        unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) },
        "creating a promise",
    )?;
    Ok((Deferred(deferred), promise))
}

/// A promise settled now with `out`, on the JavaScript thread: for answers
/// the store gives without waiting (`Storage::get_now`: a value held in
/// process memory), which then cost no trip to the runtime and back.
pub fn settled<'env, V, T, C>(
    env: &'env Env,
    out: tierfs_core::Result<T>,
    convert: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    C: FnOnce(&Env, T) -> napi::Result<sys::napi_value> + Send + 'static,
{
    let (deferred, promise) = new_promise(env)?;
    let settle: Settle = Box::new(move |env: &Env| match out {
        Ok(value) => convert(env, value),
        Err(err) => Err(error::to_js(env, &err)),
    });
    // SAFETY: on the JavaScript thread, with the deferred just created.
    unsafe { settle_now(env.raw(), env, Completion { deferred, settle }) };
    Ok(PromiseRaw::new(env.raw(), promise))
}

type Job = futures::future::BoxFuture<'static, ()>;

/// Feeds operations to the runtime through one channel, drained by one
/// task that spawns them: the JavaScript thread wakes a runtime thread once
/// per burst of calls rather than once per call.
static PUMP: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Job>> = std::sync::OnceLock::new();

fn submit(job: Job) {
    let pump = PUMP.get_or_init(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        napi::bindgen_prelude::spawn(async move {
            while let Some(job) = rx.recv().await {
                tokio::spawn(job);
            }
        });
        tx
    });
    if let Err(returned) = pump.send(job) {
        // The pump is gone (the runtime was restarted): spawn directly.
        napi::bindgen_prelude::spawn(returned.0);
    }
}

/// JavaScript threads currently blocked in a sync twin. A backend written
/// in JavaScript refuses calls while its own thread is listed, instead of
/// waiting forever for a thread that waits for it.
static BLOCKED: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

/// Whether `thread` is blocked in a sync call right now.
pub fn is_blocked(thread: ThreadId) -> bool {
    BLOCKED.lock().contains(&thread)
}

struct Blocked(ThreadId);

impl Drop for Blocked {
    fn drop(&mut self) {
        let mut blocked = BLOCKED.lock();
        if let Some(i) = blocked.iter().position(|t| *t == self.0) {
            blocked.swap_remove(i);
        }
    }
}

/// Runs `fut` to completion on the runtime, blocking the calling
/// JavaScript thread (the sync twins); an error becomes the thrown object.
pub fn block<T, F>(env: &Env, fut: F) -> napi::Result<T>
where
    F: Future<Output = tierfs_core::Result<T>>,
{
    let thread = std::thread::current().id();
    BLOCKED.lock().push(thread);
    let _unblock = Blocked(thread);
    // The JavaScript thread waits anyway: the local backend's file work
    // runs on it rather than on the blocking pool.
    let _allowed = tierfs_core::blocking::allow();
    napi::bindgen_prelude::block_on(fut).map_err(|e| error::to_js(env, &e))
}
