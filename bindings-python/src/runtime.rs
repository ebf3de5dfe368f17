//! The one tokio runtime of the process, and the bridges from Python calls
//! to futures on it.
//!
//! The runtime is multi-threaded and built on first use; pyo3-async-runtimes
//! is handed the same runtime, so everything TierFS spawns shares it.
//!
//! Blocking calls release the GIL for the whole storage operation
//! ([`block_on`]); coroutines ([`run`]) poll the operation once in place with
//! the GIL released and, if it is not done at once, move it to the runtime
//! and wait for it there, so the event loop never blocks on I/O.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::errors::to_py;
use tierfs_core::{Error, ErrorKind};

static RUNTIME: OnceLock<std::result::Result<&'static Runtime, String>> = OnceLock::new();

/// The process-wide runtime, built on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    let built = RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("tierfs-runtime")
            .build()
            .map_err(|e| format!("cannot start the TierFS runtime: {e}"))?;
        let runtime: &'static Runtime = Box::leak(Box::new(runtime));
        // pyo3-async-runtimes uses this runtime too; it fails only if it
        // already built its own, which it then keeps using.
        let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime);
        Ok(runtime)
    });
    match built {
        Ok(runtime) => Ok(runtime),
        Err(message) => Err(to_py(Error::new(ErrorKind::Unavailable, message.clone()))),
    }
}

/// Runs `fut` to completion with the GIL released.
pub fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.detach(|| block_on_detached(runtime, fut)))
}

/// Runs `fut` to completion on this thread (which holds no GIL).
pub fn block_on_detached<F: Future>(runtime: &'static Runtime, fut: F) -> F::Output {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Already inside the runtime: a Python backend (on a blocking-pool
        // thread) calling back into a store. `Runtime::block_on` refuses to
        // nest, so wait on this blocking thread instead.
        futures::executor::block_on(fut)
    } else {
        // The calling thread waits anyway: the local backend's file work
        // runs on it rather than on the blocking pool.
        let _allowed = tierfs_core::blocking::allow();
        runtime.block_on(fut)
    }
}

/// A storage operation awaited from a coroutine.
///
/// The first poll runs in place (inside the runtime's context, without the
/// GIL): an operation that completes at once (a memory read, a cached page)
/// costs no thread hop. Otherwise the operation moves to the runtime and
/// the coroutine waits for its result.
pub fn run<T, F>(fut: F) -> Detached<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    Detached { state: State::Fresh(Box::pin(fut)) }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

enum State<T> {
    Fresh(BoxFuture<T>),
    Spawned(JoinHandle<T>),
    Done,
}

/// The future returned by [`run`].
pub struct Detached<T> {
    state: State<T>,
}

impl<T: Send + 'static> Future for Detached<T> {
    type Output = PyResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let runtime = match runtime() {
            Ok(r) => r,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let this = &mut *self;
        let waker = cx.waker().clone();
        let state = std::mem::replace(&mut this.state, State::Done);
        let (state, poll) = Python::attach(|py| {
            py.detach(move || {
                let mut cx = Context::from_waker(&waker);
                match state {
                    State::Fresh(mut fut) => {
                        let _context = runtime.enter();
                        match fut.as_mut().poll(&mut cx) {
                            Poll::Ready(v) => (State::Done, Poll::Ready(Ok(v))),
                            Poll::Pending => {
                                let mut handle = runtime.spawn(fut);
                                match Pin::new(&mut handle).poll(&mut cx) {
                                    Poll::Ready(v) => (State::Done, Poll::Ready(joined(v))),
                                    Poll::Pending => (State::Spawned(handle), Poll::Pending),
                                }
                            }
                        }
                    }
                    State::Spawned(mut handle) => match Pin::new(&mut handle).poll(&mut cx) {
                        Poll::Ready(v) => (State::Done, Poll::Ready(joined(v))),
                        Poll::Pending => (State::Spawned(handle), Poll::Pending),
                    },
                    State::Done => (
                        State::Done,
                        Poll::Ready(Err(Error::new(
                            ErrorKind::InvalidInput,
                            "this operation already finished",
                        ))),
                    ),
                }
            })
        });
        this.state = state;
        poll.map(|r| r.map_err(to_py))
    }
}

impl<T> Drop for Detached<T> {
    fn drop(&mut self) {
        // A cancelled coroutine cancels its operation: the task is aborted
        // at its next await point, as a dropped Rust future would be.
        if let State::Spawned(handle) = &self.state {
            handle.abort();
        }
    }
}

/// A task's result, or an error saying it was cancelled or panicked.
pub fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> tierfs_core::Result<T> {
    result.map_err(|e| {
        let what = if e.is_cancelled() { "was cancelled" } else { "panicked" };
        Error::new(ErrorKind::Unavailable, format!("the storage task {what}; this is a bug in TierFS"))
    })
}
