//! The behaviour suite against every bare backend.

use std::sync::Arc;

use tierfs_core::{LocalStorage, MemoryStorage};
use tierfs_tests::Fixture;

mod memory {
    use super::*;
    tierfs_tests::behaviour_tests!(async { Fixture::new(Arc::new(MemoryStorage::new("memory")), vec![]) });
}

mod local {
    use super::*;
    tierfs_tests::behaviour_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open("local", dir.path(), Default::default()).unwrap();
        Fixture::new(Arc::new(store), vec![Box::new(dir)])
    });
}

mod registry {
    //! Backends created from configuration, wrapped in the tracing layer.
    use super::*;
    use tierfs_core::{Config, StorageRegistry};
    tierfs_tests::behaviour_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("[backends.main]\ntype = \"local\"\npath = {:?}\n", dir.path().join("store"));
        let config = Config::parse(&text, None).unwrap();
        let backends = StorageRegistry::with_builtins().build(&config).await.unwrap();
        Fixture::new(backends["main"].clone(), vec![Box::new(dir)])
    });
}

mod appendlog {
    //! The example plugin, loaded from its shared library by configuration.
    use super::*;
    use tierfs_core::{Config, StorageRegistry};
    tierfs_tests::behaviour_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "plugins = [{:?}]\n[backends.log]\ntype = \"appendlog\"\npath = {:?}\n",
            tierfs_tests::plugins::appendlog_library(),
            dir.path().join("values.log")
        );
        let config = Config::parse(&text, None).unwrap();
        let backends = StorageRegistry::with_builtins().build(&config).await.unwrap();
        Fixture::new(backends["log"].clone(), vec![Box::new(dir)])
    });
}
