//! The built-in backends, one folder each.

pub mod local;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;
