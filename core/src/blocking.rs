//! Where blocking work runs: on tokio's blocking pool, or inline on a thread
//! that said it may block.
//!
//! The local backend and plugin backends do file and database work that
//! blocks. Called from a tokio worker, that work must move to the blocking
//! pool, and the caller waits to be woken: two thread switches per call,
//! 10 to 30 µs on a virtual machine, more than a cached 4 KiB read costs.
//! A thread of its own that is not a worker (a FUSE request thread, the
//! caller of a synchronous binding) loses nothing by blocking, so it may
//! say so, and the work then runs right where it is asked for.
//!
//! ```
//! use tierfs_core::{blocking, Key, LocalStorage, PutOptions, Storage};
//!
//! let dir = tempfile::tempdir()?;
//! let store = LocalStorage::open("main", dir.path(), Default::default())?;
//! let rt = tokio::runtime::Builder::new_multi_thread().build()?;
//! std::thread::spawn(move || {
//!     // A thread of our own, driving calls with `block_on`.
//!     blocking::allow_on_this_thread();
//!     let key = Key::new("k")?;
//!     rt.block_on(store.put(&key, "v".into(), PutOptions::default()))?;
//!     assert_eq!(&rt.block_on(store.get(&key))?[..], b"v");
//!     Ok::<_, tierfs_core::Error>(())
//! })
//! .join()
//! .unwrap()?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Declares that the current thread may block: blocking backend work asked
/// for on it runs on it. Call it only on a thread of your own that drives
/// futures with `block_on`, never on a tokio worker (a blocked worker stalls
/// every task queued behind it).
pub fn allow_on_this_thread() {
    MAY_BLOCK.with(|m| m.set(true));
}

/// Whether [`allow_on_this_thread`] was called on the current thread.
pub fn allowed_on_this_thread() -> bool {
    MAY_BLOCK.with(Cell::get)
}

/// Runs `f`, which blocks: inline on a thread that allows it, else on
/// tokio's blocking pool. `what` names the work in the error a failed
/// pool task gives.
pub(crate) async fn run<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    if allowed_on_this_thread() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("{what} failed: {e}")))
}
