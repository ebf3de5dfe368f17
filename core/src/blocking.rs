//! Where blocking work runs: on tokio's blocking pool, or inline on a thread
//! that said it may block.
//!
//! The local backend and plugin backends do file and database work that
//! blocks. Called from a tokio worker, that work must move to the blocking
//! pool, and the caller waits to be woken: two thread switches per call,
//! 10 to 30 µs on a virtual machine, more than a cached 4 KiB read costs.
//! A thread of its own that is not a worker (a FUSE request thread, the
//! caller of a synchronous binding) loses nothing by blocking, so it may
//! say so ([`allow`]), and the work then runs right where it is asked for.
//!
//! ```
//! use tierfs_core::{blocking, Key, LocalStorage, PutOptions, Storage};
//!
//! let dir = tempfile::tempdir()?;
//! let store = LocalStorage::open("main", dir.path(), Default::default())?;
//! let rt = tokio::runtime::Builder::new_multi_thread().build()?;
//! std::thread::spawn(move || {
//!     // A thread of our own, driving calls with `block_on`.
//!     let _allowed = blocking::allow();
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
use std::marker::PhantomData;

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Lets blocking backend work asked for on the current thread run on it,
/// until the returned guard is dropped. Take it on a thread of your own
/// around a `block_on`, never on a tokio worker (a blocked worker stalls
/// every task queued behind it).
pub fn allow() -> Allowed {
    Allowed { previous: MAY_BLOCK.with(|m| m.replace(true)), _not_send: PhantomData }
}

/// Whether blocking work may run on the current thread ([`allow`]).
pub fn allowed() -> bool {
    MAY_BLOCK.with(Cell::get)
}

/// The guard of [`allow`]: dropping it restores what the thread allowed
/// before. It stays on the thread that took it.
#[must_use = "blocking is allowed only while the guard lives"]
#[derive(Debug)]
pub struct Allowed {
    previous: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Allowed {
    fn drop(&mut self) {
        MAY_BLOCK.with(|m| m.set(self.previous));
    }
}

/// Runs `f`, which blocks: inline on a thread that allows it, else on
/// tokio's blocking pool. `what` names the work in the error a failed
/// pool task gives.
pub(crate) async fn run<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    if allowed() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("{what} failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_nests_and_restores() {
        assert!(!allowed());
        {
            let _outer = allow();
            assert!(allowed());
            {
                let _inner = allow();
                assert!(allowed());
            }
            assert!(allowed(), "dropping the inner guard keeps the outer one");
        }
        assert!(!allowed());
    }

    #[test]
    fn work_runs_inline_only_where_allowed() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let here = std::thread::current().id();
        let ran_on =
            |rt: &tokio::runtime::Runtime| rt.block_on(run("test", || std::thread::current().id())).unwrap();
        assert_ne!(ran_on(&rt), here, "without the guard the pool runs it");
        let _allowed = allow();
        assert_eq!(ran_on(&rt), here, "with the guard the caller runs it");
        let on_worker = rt.block_on(async { tokio::spawn(run("test", allowed)).await.unwrap() });
        assert!(!on_worker.unwrap(), "a worker never inherits the caller's guard");
    }
}
