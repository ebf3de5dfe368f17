//! Cross-cutting behaviour as [`Storage`](crate::Storage) wrappers, each
//! documenting its defaults and where it sits in a stack.

pub mod tracing;

pub use self::tracing::TracingStorage;
