//! Builds and finds the plugin libraries of the workspace, for tests that
//! load them as users do: by path, from configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}

/// Path of the example appendlog plugin, built on first use with
/// `cargo build -p tierfs-plugin-appendlog`.
pub fn appendlog_library() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tierfs-plugin-appendlog"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the appendlog plugin failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |d| root.join(d));
        let path = target.join("debug").join(format!(
            "{}tierfs_plugin_appendlog{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        assert!(path.is_file(), "{} was not built", path.display());
        path
    })
}
