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

/// A manager over `config_text` (with `{dir}` replaced by a temporary
/// directory), seen by one principal.
async fn manager_fixture(config_text: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text.replace("{dir}", dir.path().to_str().unwrap());
    let config = tierfs_core::Config::parse(&text, None).unwrap();
    let manager = tierfs_core::StorageManager::open(config).await.unwrap();
    Fixture::new(Arc::new(manager.session("tester")), vec![Box::new(dir), Box::new(manager)])
}

mod manager_always_local {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.main]\ntype = \"local\"\npath = \"{dir}/main\"\n"
    ));
}

mod manager_routes {
    //! Every key of the suite routes to a policy other than the default.
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.main]\ntype = \"memory\"\n[backends.disk]\ntype = \"local\"\npath = \"{dir}/d\"\n\
         [policy]\ntype = \"always_local\"\nbackend = \"main\"\n\
         [[routes]]\nprefix = \"big/\"\nbackend = \"disk\"\n\
         [[routes]]\nprefix = \"stream/\"\nbackend = \"disk\"\n"
    ));
}

mod manager_tiered {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.hot]\ntype = \"memory\"\n[backends.cold]\ntype = \"local\"\npath = \"{dir}/cold\"\n\
         [policy]\ntype = \"tiered\"\nhot = \"hot\"\ncold = \"cold\"\n"
    ));
}

mod manager_prefer_cache {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.main]\ntype = \"local\"\npath = \"{dir}/main\"\n\
         [policy]\ntype = \"prefer_cache\"\nprimary = \"main\"\ncache = { capacity_mib = 16 }\n"
    ));
}

mod manager_prefer_cache_write_back {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.main]\ntype = \"memory\"\n\
         [policy]\ntype = \"prefer_cache\"\nprimary = \"main\"\ncache = { capacity_mib = 16, write = \"back\", max_dirty_mib = 2 }\n"
    ));
}

mod manager_redundant {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.a]\ntype = \"local\"\npath = \"{dir}/a\"\n[backends.b]\ntype = \"memory\"\n\
         [policy]\ntype = \"redundant\"\nbackends = [\"a\", \"b\"]\nwrite_quorum = 2\n"
    ));
}

mod manager_sharded {
    //! Three local members, one copy of each key.
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.a]\ntype = \"local\"\npath = \"{dir}/a\"\n[backends.b]\ntype = \"local\"\npath = \"{dir}/b\"\n\
         [backends.c]\ntype = \"local\"\npath = \"{dir}/c\"\n\
         [policy]\ntype = \"sharded\"\nbackends = [\"a\", \"b\", \"c\"]\n"
    ));
}

mod manager_sharded_replicas {
    //! Three members, two copies of each key.
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(
        "[backends.a]\ntype = \"local\"\npath = \"{dir}/a\"\n[backends.b]\ntype = \"memory\"\n\
         [backends.c]\ntype = \"local\"\npath = \"{dir}/c\"\n\
         [policy]\ntype = \"sharded\"\nbackends = [\"a\", \"b\", \"c\"]\nreplicas = 2\n"
    ));
}
