//! The database handle, reopened after an I/O error.
//!
//! When a commit fails on I/O (a full device), redb refuses every later
//! call on that handle with `PreviousIo` until it is closed and opened
//! again; its authors' own crash tests drop the handle and reopen the
//! file, which recovers the last committed state. Without that, one full
//! disk would stop reads for good. [`Db`] does it: after a failed write (or
//! a read refused with `PreviousIo`) it checks whether the handle is
//! poisoned and, if so, waits for the calls still holding it, closes it
//! and opens the file again. Reads then go on at once, and writes work
//! again as soon as space is freed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redb::{Database, DatabaseError, ReadTransaction, StorageError, TransactionError};

use crate::error::{Error, ErrorKind, Result};

/// How long a reopen waits for the calls still using the old handle.
const DRAIN: Duration = Duration::from_secs(5);

/// A redb database that reopens itself when an I/O error poisoned it.
#[derive(Debug)]
pub(super) struct Db {
    path: PathBuf,
    cache_size: usize,
    current: RwLock<Option<Arc<Database>>>,
    reopening: Mutex<()>,
}

impl Db {
    /// Opens (or creates) the database file `path`.
    pub fn open(path: &Path, cache_size: usize) -> std::result::Result<Db, DatabaseError> {
        let db = Database::builder().set_cache_size(cache_size).create(path)?;
        Ok(Db {
            path: path.to_owned(),
            cache_size,
            current: RwLock::new(Some(Arc::new(db))),
            reopening: Mutex::new(()),
        })
    }

    /// The handle in use (do not hold it across a call of [`Db::recover`]).
    pub fn get(&self) -> Result<Arc<Database>> {
        self.current.read().clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("the database {} could not be reopened after an I/O error", self.path.display()),
            )
        })
    }

    /// After a failed call: if the handle is poisoned, reopens the file.
    /// Returns whether it reopened it.
    pub fn recover(&self) -> bool {
        let _one = self.reopening.lock();
        let Ok(db) = self.get() else { return self.reopen() };
        let poisoned = matches!(db.begin_write(), Err(TransactionError::Storage(StorageError::PreviousIo)));
        drop(db);
        poisoned && self.reopen()
    }

    /// Closes the handle (once no call holds it) and opens the file again.
    fn reopen(&self) -> bool {
        let mut slot = self.current.write();
        if let Some(old) = slot.take() {
            let deadline = Instant::now() + DRAIN;
            while Arc::strong_count(&old) > 1 {
                if Instant::now() > deadline {
                    tracing::error!(path = %self.path.display(), "the poisoned database is still in use; not reopened");
                    *slot = Some(old);
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        for attempt in 0..50 {
            match Database::builder().set_cache_size(self.cache_size).create(&self.path) {
                Ok(db) => {
                    tracing::warn!(path = %self.path.display(), "reopened the database after an I/O error");
                    *slot = Some(Arc::new(db));
                    return true;
                }
                // The old handle's lock may take a moment to go.
                Err(DatabaseError::DatabaseAlreadyOpen) if attempt < 49 => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "the database could not be reopened after an I/O error; retrying at the next call");
                    return false;
                }
            }
        }
        false
    }
}

/// A read transaction with the handle it reads: while it lives, a reopen
/// waits for it instead of closing the file under it (its reads would then
/// fail with `DatabaseClosed`).
pub(super) struct Reading {
    txn: ReadTransaction,
    _db: Arc<Database>,
}

impl Reading {
    /// `txn`, begun on `db`.
    pub fn new(txn: ReadTransaction, db: Arc<Database>) -> Reading {
        Reading { txn, _db: db }
    }
}

impl std::ops::Deref for Reading {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}
