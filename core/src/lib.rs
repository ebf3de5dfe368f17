//! TierFS core: one storage layer with many faces.
//!
//! A [`Storage`] trait with its backends ([`MemoryStorage`],
//! [`LocalStorage`], plugins through the [`registry`]), a validated [`Key`]
//! type, one [`Error`] type, and the [`config`] file that names backends.
//!
//! ```
//! use bytes::Bytes;
//! use tierfs_core::{Key, LocalStorage, PutOptions, Storage};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalStorage::open("main", dir.path(), Default::default())?;
//!
//! let key = Key::new("reports/2026/q4.csv")?;
//! store.put(&key, Bytes::from("region,total\n"), PutOptions::default()).await?;
//! assert_eq!(store.get(&key).await?, Bytes::from("region,total\n"));
//!
//! // Invalid keys are refused, never rewritten.
//! assert!(Key::new("reports/../secrets").is_err());
//! # Ok::<_, tierfs_core::Error>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

pub mod access;
pub mod audit;
pub mod backends;
#[doc(hidden)]
pub mod blocking;
mod classes;
pub mod config;
mod error;
mod key;
mod key_locks;
pub mod layers;
pub mod manager;
pub mod metrics;
pub mod policies;
#[doc(hidden)]
pub mod private_files;
mod quotas;
pub mod registry;
mod storage;

pub use backends::local::{LocalOptions, LocalStorage};
pub use backends::memory::MemoryStorage;
pub use classes::CLASS_INDEX_PREFIX;
pub use config::Config;
pub use error::{Error, ErrorDetail, ErrorKind, Result};
pub use key::{validate_key, validate_prefix, Key, MAX_KEY_LEN, MAX_SEGMENT_LEN};
pub use manager::{ClassInfo, Session, StorageManager};
pub use quotas::{QuotaUsage, Used};
pub use registry::{StoragePlugin, StorageRegistry};
pub use storage::{
    clamp_range, collect_stream, copy_value, merge_list, rewrite_metadata, rewrite_patched, BatchOp,
    ByteStream, Capabilities, Condition, KeyFilter, ListEntry, ListOptions, ListPage, ListPageBuilder,
    LocalFile, MergeSource, Metadata, MetadataChanges, ObjectMeta, Operation, Patch, PutOptions, Storage,
    StorageExt, ValueWriter, DEFAULT_LIST_LIMIT,
};
