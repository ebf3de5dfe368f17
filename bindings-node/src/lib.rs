//! TierFS for Node.js: the native half of the npm package `tierfs`.
//!
//! The package's `index.js` wraps the classes exported here into the public
//! API (`open`, `Store`, Node streams, async iterators); this crate only
//! converts values, calls `tierfs-core`, and maps errors once
//! ([`error`]). Everything runs on the tokio runtime napi-rs owns, off the
//! JavaScript thread; a promise settles on the JavaScript thread when its
//! operation ends.
//!
//! Layout: [`store`] (the store and its admin methods), [`stream`] (streamed
//! reads and writes), [`backend`] (backends written in JavaScript, through
//! the process-wide [`registry`]), [`convert`] (values crossing the
//! boundary), [`error`] (the one `ErrorKind` to `err.code` mapping),
//! [`task`] (promises and blocking calls).
#![deny(missing_docs)]

pub mod backend;
pub mod convert;
pub mod error;
pub mod registry;
pub mod store;
pub mod stream;
pub mod task;
