//! Access control, audit and administration, end to end.

mod audit;
mod circumvention;
mod delegation;
mod evaluator;
mod private;
mod reload;

use std::sync::Arc;

use tierfs_core::{Config, StorageManager};

/// A manager over `config_text` with `{dir}` replaced by a temporary directory.
pub async fn manager(config_text: &str) -> (StorageManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text.replace("{dir}", dir.path().to_str().unwrap());
    let config = Config::parse(&text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (StorageManager::open(config).await.unwrap(), dir)
}

/// A storage handle for `principal` with `roles`.
pub fn as_user(m: &StorageManager, principal: &str, roles: &[&str]) -> Arc<tierfs_core::Session> {
    let mut p = tierfs_core::access::Principal::new(principal);
    for r in roles {
        p = p.with_role(*r);
    }
    Arc::new(m.session(p))
}
