//! Backend types from shared libraries (stable C ABI).

use std::path::Path;
use std::sync::Arc;

use super::StoragePlugin;
use crate::error::{Error, ErrorKind, Result};

/// The plugin ABI version this build speaks.
pub const PLUGIN_ABI_VERSION: u32 = 1;

pub(super) fn load(path: &Path) -> Result<Vec<Arc<dyn StoragePlugin>>> {
    Err(Error::new(ErrorKind::Unsupported, format!("loading {} is not built yet", path.display())))
}
