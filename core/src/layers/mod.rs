//! Cross-cutting behaviour as [`Storage`](crate::Storage) wrappers, each
//! documenting its defaults and where it sits in a stack.
//!
//! The manager builds, for each backend, from the inside out:
//! backend, [`TracingStorage`] (added by the registry), [`HealthStorage`],
//! then [`MetricsStorage`](crate::metrics::MetricsStorage). Policies are
//! layers over those.

pub mod fault;
pub mod health;
pub mod tracing;

pub use self::fault::{FaultFilter, FaultHandle, FaultStorage};
pub use self::health::{HealthOptions, HealthStorage};
pub use self::tracing::TracingStorage;
