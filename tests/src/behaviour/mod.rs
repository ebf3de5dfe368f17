//! The behaviour suite: every case runs against every backend and every
//! policy stack through [`behaviour_tests!`](crate::behaviour_tests).
//! Cases that need a capability check [`tierfs_core::Capabilities`] and assert the
//! documented refusal when it is missing.

mod basics;
mod batch;
mod concurrency;
mod list;
mod metadata;
mod patch;
pub mod streaming;

pub use basics::*;
pub use batch::*;
pub use concurrency::*;
pub use list::*;
pub use metadata::*;
pub use patch::*;
pub use streaming::*;

use bytes::Bytes;
use tierfs_core::{Error, ErrorKind, Key, PutOptions, Storage};

/// `Key::new(s).unwrap()`, for test literals.
pub fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?}: {e}"))
}

/// Puts `value` under `k` with no metadata.
pub async fn put(store: &dyn Storage, k: &str, value: impl Into<Bytes>) {
    store.put(&key(k), value.into(), PutOptions::default()).await.unwrap_or_else(|e| panic!("put {k}: {e}"));
}

/// Asserts that `result` failed with `kind`, and returns the error.
pub fn expect_kind<T: std::fmt::Debug>(result: Result<T, Error>, kind: ErrorKind) -> Error {
    match result {
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "wrong kind: {e}");
            e
        }
    }
}

/// Generates one `#[tokio::test]` per behaviour case, each on a fresh
/// fixture from the given async expression.
///
/// ```ignore
/// mod memory {
///     tierfs_tests::behaviour_tests!(async { Fixture::new(Arc::new(MemoryStorage::new("m")), vec![]) });
/// }
/// ```
#[macro_export]
macro_rules! behaviour_tests {
    ($fixture:expr) => {
        $crate::behaviour_tests!(@cases $fixture;
            round_trip, overwrite_replaces_value_and_metadata, empty_value, missing_keys,
            range_reads_clamp, metadata_round_trip, lookalike_keys_are_distinct, invalid_keys_refused,
            conditional_put, rename, get_with_meta,
            list_children_and_subtree, list_partial_prefix, list_pagination, list_pagination_of_groups,
            list_missing_prefix_is_empty,
            batch_applies_all, batch_failing_half_way_applies_nothing,
            concurrent_writers_same_key, concurrent_writers_different_keys, concurrent_conditional_puts,
            streamed_write_and_read, streamed_write_abort_keeps_old_value, streamed_large_value,
            set_metadata_changes_only_metadata, set_metadata_conditions, set_metadata_of_a_large_value,
            concurrent_metadata_updates_lose_nothing,
            patch_writes_extends_and_truncates, patch_conditions, patch_of_a_large_value,
            patch_keeps_untouched_parts, concurrent_patches_lose_nothing
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::Fixture = $fixture.await;
                $crate::behaviour::$case(fixture.storage.clone()).await;
            }
        )*
    };
}
