//! Policies: layers that combine backends into one [`Storage`](crate::Storage).
//!
//! - [`cache`]: `CacheStorage`, a cache tier in front of a primary (`PreferCache`).
//! - [`redundant`]: `RedundantStorage`, copies on several backends (`Redundant`).
//! - [`tiered`]: `TieredStorage`, hot and cold tiers with migration (`Tiered`).
//! - [`custom`]: policies registered by plugins (`Custom(name)`).

pub mod cache;
pub mod custom;
pub mod redundant;
pub mod tiered;
