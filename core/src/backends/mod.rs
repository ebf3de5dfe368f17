//! The built-in backends, one folder each.

pub mod local;
pub mod memory;
pub mod s3;
