//! The appendlog plugin loaded at run time through the registry, as a user
//! would: a configuration file naming the shared library. Also the
//! loader's refusals: a missing file, a library that is not a plugin, one
//! built for another ABI, and unknown settings; and a plugin of the older
//! ABI v1, which loads and gets `set_metadata` by the host's fallback.
//!
//! The test builds the shared libraries it loads with `cargo build -p
//! tierfs-plugin-appendlog -p tierfs-test-bad-abi-plugin -p
//! tierfs-test-abi-v1-plugin` into `$CARGO_TARGET_DIR/debug` (default
//! `<workspace>/target/debug`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tierfs_core::{
    collect_stream, BatchOp, Condition, Config, Error, ErrorKind, Key, ListEntry, ListOptions, Metadata,
    MetadataChanges, PutOptions, Storage, StorageExt, StorageRegistry,
};

struct Libraries {
    appendlog: PathBuf,
    bad_abi: PathBuf,
    abi_v1: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Builds the plugin libraries once per test run and returns their paths.
fn libraries() -> &'static Libraries {
    static BUILT: OnceLock<Libraries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "tierfs-plugin-appendlog",
                "-p",
                "tierfs-test-bad-abi-plugin",
                "-p",
                "tierfs-test-abi-v1-plugin",
            ])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the plugin libraries failed");
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let lib = |name: &str| {
            let path = target.join("debug").join(format!(
                "{}{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ));
            assert!(path.is_file(), "{} was not built", path.display());
            path
        };
        Libraries {
            appendlog: lib("tierfs_plugin_appendlog"),
            bad_abi: lib("tierfs_test_bad_abi_plugin"),
            abi_v1: lib("tierfs_test_abi_v1_plugin"),
        }
    })
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Writes `tierfs.toml` into `dir` and loads it.
fn write_config(dir: &Path, text: &str) -> Config {
    let path = dir.join("tierfs.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn appendlog_config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "plugins = [{:?}]\n\n[backends.log]\ntype = \"appendlog\"\npath = \"data/tierfs.log\"\n{extra}",
        libraries().appendlog
    );
    write_config(dir, &text)
}

async fn open_log(dir: &Path) -> Arc<dyn Storage> {
    let registry = StorageRegistry::with_builtins();
    let mut backends = registry.build(&appendlog_config(dir, "")).await.unwrap();
    assert_eq!(registry.types(), ["appendlog", "local", "memory", "s3"]);
    backends.remove("log").unwrap()
}

fn expect_kind<T: std::fmt::Debug>(result: Result<T, Error>, kind: ErrorKind) -> Error {
    match result {
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{e}");
            e
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trips_every_operation_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_log(dir.path()).await;
    assert_eq!(store.name(), "log");
    let caps = store.capabilities();
    assert!(caps.atomic_batch && caps.range_read && caps.persistent, "{caps:?}");
    assert!(
        dir.path().join("data/tierfs.log").is_file(),
        "the path is taken from the configuration's directory"
    );

    // put, get, get_range (clamped), stat.
    let mut meta = Metadata::new();
    meta.insert("posix.mode".into(), "100644".into());
    meta.insert("note".into(), "ünïcödé \"quoted\"".into());
    let k = key("docs/readme.txt");
    let put = store
        .put(&k, Bytes::from_static(b"hello world"), PutOptions::with_metadata(meta.clone()))
        .await
        .unwrap();
    assert_eq!((put.key.clone(), put.size), (k.clone(), 11));
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"hello world"));
    assert_eq!(store.get_range(&k, 6..100).await.unwrap(), Bytes::from_static(b"world"));
    assert!(store.get_range(&k, 50..60).await.unwrap().is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 5..2;
    expect_kind(store.get_range(&k, inverted).await, ErrorKind::InvalidInput);
    let stat = store.stat(&k).await.unwrap();
    assert_eq!((stat.size, &stat.version, &stat.metadata), (11, &put.version, &meta));

    // Missing keys: NotFound with key and backend; deleting one succeeds.
    let missing = key("no/such/key");
    for e in [
        expect_kind(store.get(&missing).await, ErrorKind::NotFound),
        expect_kind(store.stat(&missing).await, ErrorKind::NotFound),
        expect_kind(store.read(&missing, None).await.map(|_| ()), ErrorKind::NotFound),
    ] {
        assert_eq!((e.key(), e.backend()), (Some("no/such/key"), Some("log")), "{e}");
    }
    store.delete(&missing).await.unwrap();

    // Conditional put.
    let once = PutOptions { if_not_exists: true, ..Default::default() };
    expect_kind(store.put(&k, Bytes::from_static(b"x"), once).await, ErrorKind::AlreadyExists);

    // list: children group deeper keys; recursive lists all; pages join up.
    for name in ["docs/a", "docs/sub/b", "docs/sub/deep/c", "other"] {
        store.put(&key(name), Bytes::from(name.to_owned()), PutOptions::default()).await.unwrap();
    }
    let names = |options: ListOptions| {
        let store = store.clone();
        async move {
            store.list_stream(options).map_ok(|e| e.name().to_owned()).try_collect::<Vec<_>>().await.unwrap()
        }
    };
    assert_eq!(names(ListOptions::children("docs/")).await, ["docs/a", "docs/readme.txt", "docs/sub/"]);
    assert_eq!(
        names(ListOptions { limit: Some(1), ..ListOptions::recursive("docs/") }).await,
        ["docs/a", "docs/readme.txt", "docs/sub/b", "docs/sub/deep/c"]
    );
    let page = store.list(&ListOptions::children("docs/")).await.unwrap();
    match &page.entries[1] {
        ListEntry::Object(m) => assert_eq!((m.size, &m.metadata), (11, &meta)),
        other => panic!("expected an object, got {other:?}"),
    }
    expect_kind(store.list(&ListOptions::children("a//")).await, ErrorKind::InvalidKey);

    // batch: all applied; a failing one applies nothing and names the key.
    let big = Bytes::from(pattern(600 * 1024));
    store
        .batch(vec![
            BatchOp::put(key("b/one"), "1"),
            BatchOp::put(key("b/big"), big.clone()),
            BatchOp::delete(key("other")),
            BatchOp::delete(key("never/existed")),
        ])
        .await
        .unwrap();
    assert_eq!(store.get(&key("b/big")).await.unwrap(), big);
    expect_kind(store.get(&key("other")).await, ErrorKind::NotFound);
    let e = expect_kind(
        store
            .batch(vec![BatchOp::put(key("b/new"), "n"), BatchOp::put_if_absent(key("b/one"), "clobbered")])
            .await,
        ErrorKind::AlreadyExists,
    );
    assert_eq!(e.key(), Some("b/one"), "{e}");
    expect_kind(store.get(&key("b/new")).await, ErrorKind::NotFound);
    assert_eq!(store.get(&key("b/one")).await.unwrap(), Bytes::from_static(b"1"));

    // Streamed write and read, in 1 MiB pieces at most.
    let value = pattern(3 * 1024 * 1024 + 17);
    let streamed = key("big/stream.bin");
    let mut writer = store.write(&streamed, PutOptions::with_metadata(meta.clone())).await.unwrap();
    for chunk in value.chunks(64 * 1024) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(writer.finish().await.unwrap().size, value.len() as u64);
    let mut stream = store.read(&streamed, None).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= 1 << 20, "a chunk of {} bytes", chunk.len());
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, value);
    // A stream holds its backend (and the library) alive; let it go.
    drop(stream);
    let ranged =
        collect_stream(store.read(&streamed, Some(5..value.len() as u64 - 3)).await.unwrap()).await.unwrap();
    assert_eq!(&ranged[..], &value[5..value.len() - 3]);
    assert!(collect_stream(store.read(&streamed, Some(1 << 40..1 << 41)).await.unwrap())
        .await
        .unwrap()
        .is_empty());

    // An aborted and a dropped writer leave the old value.
    let mut w = store.write(&k, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"discarded")).await.unwrap();
    w.abort().await.unwrap();
    let mut w = store.write(&k, PutOptions::default()).await.unwrap();
    w.write(Bytes::from(vec![1u8; 2 << 20])).await.unwrap();
    drop(w);
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"hello world"));

    // rename and delete.
    store.rename(&key("docs/a"), &key("docs/renamed")).await.unwrap();
    expect_kind(store.get(&key("docs/a")).await, ErrorKind::NotFound);
    store.delete(&key("b/one")).await.unwrap();

    // Everything survives dropping the backend and loading the plugin anew.
    drop(store);
    let store = open_log(dir.path()).await;
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"hello world"));
    assert_eq!(store.stat(&k).await.unwrap().metadata, meta);
    assert_eq!(store.get(&key("b/big")).await.unwrap(), big);
    assert_eq!(store.get(&streamed).await.unwrap(), Bytes::from(value));
    assert_eq!(store.get(&key("docs/renamed")).await.unwrap(), Bytes::from_static(b"docs/a"));
    expect_kind(store.get(&key("b/one")).await, ErrorKind::NotFound);
    expect_kind(store.get(&key("other")).await, ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backends_outlive_the_registry_that_loaded_them() {
    let dir = tempfile::tempdir().unwrap();
    let registry = StorageRegistry::with_builtins();
    let backends = registry.build(&appendlog_config(dir.path(), "")).await.unwrap();
    drop(registry);
    let store = backends["log"].clone();
    drop(backends);
    let k = key("still/loaded");
    store.put(&k, Bytes::from_static(b"yes"), PutOptions::default()).await.unwrap();
    let value = store.get(&k).await.unwrap();
    drop(store);
    // A value handed out by the plugin stays readable after its backend is gone.
    assert_eq!(value, Bytes::from_static(b"yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_is_opened_by_one_backend_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_log(dir.path()).await;
    let registry = StorageRegistry::with_builtins();
    let e = expect_kind(registry.build(&appendlog_config(dir.path(), "")).await, ErrorKind::Unavailable);
    assert!(e.to_string().contains("already open"), "{e}");
    drop(store);
}

#[test]
fn a_missing_library_is_a_config_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let registry = StorageRegistry::with_builtins();
    let path = dir.path().join("libnothing.so");
    let e = expect_kind(registry.load_library(&path), ErrorKind::Config);
    assert!(e.message().contains(&format!("no plugin library at {}", path.display())), "{e}");

    // Through a configuration file: the file and the field are named too.
    let config =
        write_config(dir.path(), "plugins = [\"libs/libnothing.so\"]\n[backends.m]\ntype = \"memory\"\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = expect_kind(rt.block_on(registry.build(&config)), ErrorKind::Config);
    let msg = e.to_string();
    assert!(msg.contains("tierfs.toml") && msg.contains("`plugins`"), "{msg}");
    assert!(
        msg.contains(&format!("no plugin library at {}", dir.path().join("libs/libnothing.so").display())),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_no_shared_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libfake.so");
    std::fs::write(&path, "not an ELF file").unwrap();
    let e = expect_kind(StorageRegistry::empty().load_library(&path), ErrorKind::Config);
    assert!(e.message().contains(&format!("cannot load the plugin library {}", path.display())), "{e}");
    assert!(e.message().contains("shared library"), "{e}");
}

#[test]
fn a_library_that_is_no_plugin_is_refused() {
    let candidates = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib64/libm.so.6",
    ];
    let libm = candidates.iter().map(Path::new).find(|p| p.is_file()).expect("libm on this system");
    let registry = StorageRegistry::with_builtins();
    let e = expect_kind(registry.load_library(libm), ErrorKind::Config);
    assert!(
        e.message().contains(&format!("{} is not a TierFS plugin", libm.display()))
            && e.message().contains("does not export `tierfs_plugin_abi_version`"),
        "{e}"
    );
    assert_eq!(registry.types(), ["local", "memory", "s3"]);
}

#[test]
fn a_plugin_for_another_abi_is_refused_with_what_to_do() {
    let path = &libraries().bad_abi;
    let e = expect_kind(StorageRegistry::with_builtins().load_library(path), ErrorKind::Config);
    assert_eq!(
        e.message(),
        format!(
            "{} was built for plugin ABI v999, this tierfs loads v1 to v2; rebuild the plugin \
             against tierfs-plugin-api 2.x",
            path.display()
        )
    );
    assert_eq!(tierfs_core::registry::PLUGIN_ABI_VERSION, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_changes_alone_append_a_small_record_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("big/value");
    let value = pattern(4 << 20);
    let log_file = dir.path().join("data/tierfs.log");
    let put_version = {
        let store = open_log(dir.path()).await;
        let meta = Metadata::from([
            ("posix.mode".to_owned(), "100644".to_owned()),
            ("x".to_owned(), "1".to_owned()),
        ]);
        let put = store.put(&k, Bytes::from(value.clone()), PutOptions::with_metadata(meta)).await.unwrap();
        let before = std::fs::metadata(&log_file).unwrap().len();
        let changes = MetadataChanges::new().set("posix.mode", "100600").remove("x");
        let after =
            store.set_metadata(&k, &changes, &Condition::VersionIs(put.version.clone())).await.unwrap();
        assert_eq!(after.metadata, Metadata::from([("posix.mode".to_owned(), "100600".to_owned())]));
        assert_eq!(after.size, value.len() as u64);
        assert_ne!(after.version, put.version);
        let grown = std::fs::metadata(&log_file).unwrap().len() - before;
        assert!(grown < 256, "a metadata change appended {grown} bytes: the value was rewritten");
        // The old version no longer matches; a missing key is not found.
        let stale = store.set_metadata(&k, &changes, &Condition::VersionIs(put.version.clone())).await;
        expect_kind(stale, ErrorKind::Conflict);
        expect_kind(
            store.set_metadata(&key("missing"), &changes, &Condition::Exists).await,
            ErrorKind::NotFound,
        );
        put.version
    };
    let store = open_log(dir.path()).await;
    let meta = store.stat(&k).await.unwrap();
    assert_eq!(meta.metadata, Metadata::from([("posix.mode".to_owned(), "100600".to_owned())]));
    assert_ne!(meta.version, put_version);
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from(value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_of_abi_v1_loads_and_gets_set_metadata_by_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("plugins = [{:?}]\n\n[backends.old]\ntype = \"v1mem\"\n", libraries().abi_v1);
    let registry = StorageRegistry::with_builtins();
    let store = registry.build(&write_config(dir.path(), &text)).await.unwrap().remove("old").unwrap();
    let k = key("a/b");
    let put = store.put(&k, Bytes::from_static(b"kept"), PutOptions::default()).await.unwrap();
    let changes = MetadataChanges::new().set("posix.uid", "1000");
    let after = store.set_metadata(&k, &changes, &Condition::VersionIs(put.version.clone())).await.unwrap();
    assert_eq!(after.metadata["posix.uid"], "1000");
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"kept"));
    assert_eq!(store.stat(&k).await.unwrap().metadata["posix.uid"], "1000");
    expect_kind(
        store.set_metadata(&k, &changes, &Condition::VersionIs(put.version)).await,
        ErrorKind::Conflict,
    );
    expect_kind(store.set_metadata(&key("missing"), &changes, &Condition::Exists).await, ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_missing_settings_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = appendlog_config(dir.path(), "pth = \"typo.log\"\n");
    let e = expect_kind(StorageRegistry::with_builtins().build(&config).await, ErrorKind::Config);
    let msg = e.to_string();
    assert!(msg.contains("`backends.log`") && msg.contains("unknown field `pth`, expected `path`"), "{msg}");
    assert!(msg.contains("tierfs.toml"), "{msg}");

    let text = format!("plugins = [{:?}]\n[backends.log]\ntype = \"appendlog\"\n", libraries().appendlog);
    let config = write_config(dir.path(), &text);
    let e = expect_kind(StorageRegistry::with_builtins().build(&config).await, ErrorKind::Config);
    assert!(e.to_string().contains("`backends.log`: missing field `path`"), "{e}");
}
