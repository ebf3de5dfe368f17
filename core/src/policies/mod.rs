//! Policies: layers that combine backends into one [`Storage`](crate::Storage).
//!
//! - [`cache`]: `CacheStorage`, a cache tier in front of a primary (`PreferCache`).
//! - [`redundant`]: `RedundantStorage`, copies on several backends (`Redundant`).

pub mod cache;
pub mod redundant;
