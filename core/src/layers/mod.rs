//! Cross-cutting behaviour as [`Storage`](crate::Storage) wrappers, each
//! documenting its defaults and where it sits in a stack.
//!
//! The manager puts one [`ManagedStorage`] around each bare backend: a
//! tracing span, metrics and the [`HealthGuard`] of [`HealthStorage`] in a
//! single layer. Policies are layers over those. [`TracingStorage`] (added
//! by the registry to the backends it hands out) and [`HealthStorage`] are
//! the same behaviours one at a time, for stacks built by hand.
//! `FaultStorage`, for tests, injects failures and
//! delays; it exists with the `testing` feature only.

#[cfg(feature = "testing")]
pub mod fault;
pub mod health;
pub mod managed;
pub mod tracing;

#[cfg(feature = "testing")]
pub use self::fault::{FaultFilter, FaultHandle, FaultStorage};
pub use self::health::{HealthGuard, HealthOptions, HealthStorage};
pub use self::managed::ManagedStorage;
pub use self::tracing::TracingStorage;
