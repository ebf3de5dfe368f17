//! The behaviour suite on the cluster: bare, and behind each cache.

use tierfs_tests::services::{redis_cluster_urls, redis_url, s3_backend_toml, s3_second_bucket_toml};

use super::{backend_fixture, manager_fixture};

mod s3 {
    use super::*;
    tierfs_tests::behaviour_tests!(backend_fixture(s3_backend_toml("cluster", "")));
}

mod s3_small_parts {
    //! Multipart uploads for everything above 5 MiB.
    use super::*;
    tierfs_tests::behaviour_tests!(backend_fixture(s3_backend_toml("cluster", "part_size_mib = 5\n")));
}

mod prefer_cache_lru {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(format!(
        "{}[policy]\ntype = \"prefer_cache\"\nprimary = \"cluster\"\ncache = {{ capacity_mib = 64 }}\n",
        s3_backend_toml("cluster", "")
    )));
}

mod prefer_cache_redis {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(format!(
        "{}[policy]\ntype = \"prefer_cache\"\nprimary = \"cluster\"\ncache = {{ tier = \"redis\", redis_url = \"{}\" }}\n",
        s3_backend_toml("cluster", ""),
        redis_url()
    )));
}

mod prefer_cache_redis_cluster {
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(format!(
        "{}[policy]\ntype = \"prefer_cache\"\nprimary = \"cluster\"\ncache = {{ tier = \"redis\", redis_url = {:?} }}\n",
        s3_backend_toml("cluster", ""),
        redis_cluster_urls()
    )));
}

mod sharded_two_buckets {
    //! Keys spread over two buckets of the cluster.
    use super::*;
    tierfs_tests::behaviour_tests!(manager_fixture(format!(
        "{}{}[policy]\ntype = \"sharded\"\nbackends = [\"first\", \"second\"]\n",
        s3_backend_toml("first", ""),
        s3_second_bucket_toml("second", "")
    )));
}
