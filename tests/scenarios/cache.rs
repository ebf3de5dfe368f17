//! Scenarios of `CacheStorage`.
