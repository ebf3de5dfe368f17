//! `tierfs mount`: opens the manager, mounts, serves until unmounted.
//!
//! - SIGINT and SIGTERM unmount (lazily if files are still open) and the
//!   daemon exits once the kernel lets go, after writing every unsaved
//!   change.
//! - SIGHUP reloads the configuration file: `Config::load` then
//!   `StorageManager::reconfigure`; a file that does not load or validate
//!   is reported and changes nothing.
//! - `--metrics-addr` serves the manager's metrics in the Prometheus text
//!   format over plain HTTP (any path).

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{MountOption, SessionACL};
use tierfs_core::{Config, StorageManager};

use crate::fs::spool::SpoolDir;
use crate::fs::store::Store;
use crate::fs::{journal, FsOptions, TierFs};
use crate::fuse::{FuseAdapter, Xattrs};
use crate::identity::IdentityMap;

/// Everything `tierfs mount` needs.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The configuration file; `None` for the embedded default.
    pub config: Option<PathBuf>,
    /// Data directory of the embedded default (default: the user's data directory).
    pub root: Option<PathBuf>,
    /// Let other users use the mount (`allow_other`).
    pub allow_other: bool,
    /// Kernel request threads.
    pub threads: usize,
    /// Attribute and name cache lifetime in the kernel; `None` for [`auto_attr_ttl`].
    pub attr_ttl: Option<Duration>,
    /// Where spool files go (default: `$TMPDIR`).
    pub spool_dir: Option<PathBuf>,
    /// Serve metrics here.
    pub metrics_addr: Option<SocketAddr>,
    /// Names for uids and gids.
    pub identities: IdentityMap,
    /// Commit every change before replying (no group commit).
    pub sync: bool,
    /// Serve extended attributes (`user.` ones, stored with each object).
    pub xattrs: bool,
    /// Serve read-only opens of values kept as local files by passthrough
    /// (Linux 6.9+; falls back to reads through the daemon elsewhere).
    pub passthrough: bool,
}

/// Cache lifetime when the store is private to this daemon and one user
/// mounts it: every change then passes through this kernel, which keeps its
/// caches right, so long lifetimes stay correct.
pub const PRIVATE_ATTR_TTL: Duration = Duration::from_secs(60);
/// Cache lifetime otherwise: other processes may change a shared backend,
/// and cached attributes are visible to every user of an `allow_other` mount.
pub const SHARED_ATTR_TTL: Duration = Duration::from_secs(1);

/// The default attribute and name cache lifetime for `config`: long when
/// every backend is private to this process (`local`, `memory`) and the
/// mount is single-user, one second otherwise.
pub fn auto_attr_ttl(config: &Config, allow_other: bool) -> Duration {
    if private_store(config) && !allow_other {
        PRIVATE_ATTR_TTL
    } else {
        SHARED_ATTR_TTL
    }
}

/// Whether only this process can change the store: every backend is
/// `local` (its database admits one process) or `memory`.
fn private_store(config: &Config) -> bool {
    config.backends.values().all(|b| b.kind == "local" || b.kind == "memory")
}

/// Creates the mount point when it does not exist yet (the README's first
/// command mounts on `~/tierfs`), and refuses one that is not a directory.
fn prepare_mountpoint(mountpoint: &Path) -> Result<(), String> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("cannot mount at {}: it is not a directory", mountpoint.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(mountpoint)
                .map_err(|e| format!("cannot create the mount point {}: {e}", mountpoint.display()))?;
            tracing::info!(mountpoint = %mountpoint.display(), "created the mount point");
            Ok(())
        }
        // Not readable as ours (a stale mount, no permission): let the mount say why.
        Err(_) => Ok(()),
    }
}

/// The directory of the local backend that holds keys no route claims (or
/// of the first local backend): where `statfs` finds the store's space.
pub fn store_dir(config: &Config) -> Option<PathBuf> {
    let default = config.policy.as_ref().map(|p| p.backends(config)).unwrap_or_default();
    let local_dir = |name: &String| {
        let b = config.backends.get(name).filter(|b| b.kind == "local")?;
        Some(config.resolve_path(Path::new(b.settings.get("path")?.as_str()?)))
    };
    default.iter().find_map(local_dir).or_else(|| config.backends.keys().find_map(local_dir))
}

/// Loads the configuration, or the embedded default in `root`.
pub fn load_config(config: Option<&Path>, root: Option<&Path>) -> Result<Config, String> {
    match config {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Config::embedded_default(root).map_err(|e| e.to_string()),
    }
}

/// Mounts and serves until unmounted; returns an error message on failure.
pub fn mount(options: MountOptions) -> Result<(), String> {
    if options.config.is_some() && options.root.is_some() {
        return Err("--root names the data directory of the embedded default; with --config, set the backend's path in the file".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .thread_name("tierfs-rt")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    prepare_mountpoint(&options.mountpoint)?;
    let config = load_config(options.config.as_deref(), options.root.as_deref())?;
    let attr_ttl = options.attr_ttl.unwrap_or_else(|| auto_attr_ttl(&config, options.allow_other));
    let manager =
        rt.block_on(StorageManager::open(config)).map_err(|e| format!("cannot open the store: {e}"))?;
    let spool_path = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool = SpoolDir::new(&spool_path, journal::MAX_VALUE, 32 << 20)
        .map_err(|e| format!("cannot use the spool directory {}: {e}", spool_path.display()))?;
    let store = {
        let _guard = rt.enter();
        Arc::new(Store::new(manager.clone(), !options.sync, attr_ttl))
    };
    let fs_options = FsOptions {
        attr_ttl,
        root_mode: if options.allow_other { 0o777 } else { 0o755 },
        store_dir: store_dir(&manager.config()),
        shared: !private_store(&manager.config()),
        ..FsOptions::default()
    };
    let fs = Arc::new(TierFs::new(store, spool, options.identities.clone(), fs_options));

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("tierfs".into()),
        MountOption::Subtype("tierfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    config.acl = if options.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    // The storage class attribute is served wherever a class can put data
    // elsewhere than its route (more than one backend), all `user.` ones
    // with `--xattrs`.
    let xattrs = match (options.xattrs, manager.backend_names().len() > 1) {
        (true, _) => Xattrs::All,
        (false, true) => Xattrs::ClassOnly,
        (false, false) => Xattrs::Off,
    };
    let adapter = FuseAdapter::new(fs.clone(), rt.handle().clone(), xattrs, options.passthrough);
    let mut session = fuser::Session::new(adapter, &options.mountpoint, &config)
        .map_err(|e| format!("cannot mount at {}: {e}", options.mountpoint.display()))?;
    let unmounter = session.unmount_callable();
    let mountpoint = options.mountpoint.canonicalize().unwrap_or_else(|_| options.mountpoint.clone());

    let notifier = session.notifier();
    rt.spawn(signals(
        unmounter,
        notifier,
        mountpoint.clone(),
        options.config.clone(),
        manager.clone(),
        fs.clone(),
    ));
    if let Some(addr) = options.metrics_addr {
        serve_metrics(addr, manager.clone(), fs.clone())?;
    }
    tracing::info!(
        mountpoint = %mountpoint.display(),
        attr_timeout = ?attr_ttl,
        "mounted; SIGINT or SIGTERM unmounts, SIGHUP reloads"
    );
    let served = match session.run() {
        // The kernel ends a connection whose requests were still in flight at
        // unmount with ECONNABORTED; the mount is gone either way and every
        // handler has run, so that is a normal end.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
            tracing::warn!("the kernel aborted the connection at unmount; treating it as a normal unmount");
            Ok(())
        }
        other => other,
    };
    tracing::info!("unmounted");
    rt.shutdown_timeout(Duration::from_secs(5));
    served.map_err(|e| format!("the FUSE session failed: {e}"))
}

async fn signals(
    mut unmounter: fuser::SessionUnmounter,
    notifier: fuser::Notifier,
    mountpoint: PathBuf,
    config: Option<PathBuf>,
    manager: StorageManager,
    fs: Arc<TierFs>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; unmount with `tierfs unmount`");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if reload(config.as_deref(), &manager, &fs).await {
                    forget_open_pages(&notifier, &fs).await;
                }
            }
        }
    }
    tracing::info!("signal received; unmounting");
    if let Err(e) = unmounter.unmount() {
        tracing::warn!(error = %e, "unmount failed (files still open?); detaching lazily");
        if let Err(e) = unmount_path(&mountpoint, true) {
            tracing::error!(error = %e, "lazy unmount failed");
        }
    }
}

/// SIGHUP: reload the configuration file, or report why not; whether it
/// was reloaded.
pub async fn reload(config: Option<&Path>, manager: &StorageManager, fs: &TierFs) -> bool {
    let Some(path) = config else {
        tracing::warn!("SIGHUP: serving the embedded default; there is no configuration file to reload");
        return false;
    };
    let loaded = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration was not reloaded; nothing changed");
            return false;
        }
    };
    match manager.reconfigure(loaded).await {
        Ok(()) => {
            fs.reconfigured();
            tracing::info!(file = %path.display(), "SIGHUP: configuration reloaded");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration was not applied; nothing changed");
            false
        }
    }
}

/// After a reload, the kernel forgets the pages it cached of every open
/// file: a descriptor opened before the rules narrowed must ask the daemon
/// (which decides each read again), not read pages cached before.
async fn forget_open_pages(notifier: &fuser::Notifier, fs: &TierFs) {
    let inodes = fs.open_inodes();
    let notifier = notifier.clone();
    let sent = tokio::task::spawn_blocking(move || {
        for ino in inodes {
            if let Err(e) = notifier.inval_inode(fuser::INodeNo(ino), 0, 0) {
                tracing::debug!(ino, error = %e, "the kernel did not take an invalidation");
            }
        }
    });
    if let Err(e) = sent.await {
        tracing::warn!(error = %e, "forgetting cached pages after a reload failed");
    }
}

/// Unmounts `path` (`lazy`: detach now, finish when no longer busy),
/// falling back to `fusermount3 -u` / `fusermount -u` without privilege.
pub fn unmount_path(path: &Path, lazy: bool) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path contains NUL".to_owned())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(format!("cannot unmount {}: {err}", path.display()));
    }
    for tool in ["fusermount3", "fusermount"] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        if let Ok(status) = cmd.arg(path).status() {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{tool} -u {} failed ({status})", path.display()))
            };
        }
    }
    Err(format!("cannot unmount {}: {err}, and no fusermount3 or fusermount was found", path.display()))
}

/// Starts the metrics endpoint on `addr`.
fn serve_metrics(addr: SocketAddr, manager: StorageManager, fs: Arc<TierFs>) -> Result<(), String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    std::thread::Builder::new()
        .name("tierfs-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let body = metrics_text(&manager, &fs);
                if let Err(e) = respond(stream, &body) {
                    tracing::debug!(error = %e, "a metrics request failed");
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    tracing::info!(%addr, "serving metrics");
    Ok(())
}

/// The manager's metrics plus the file system's own gauges.
pub fn metrics_text(manager: &StorageManager, fs: &TierFs) -> String {
    let mut out = manager.metrics().to_prometheus();
    out.push_str(&format!(
        "# HELP tierfs_fuse_inodes Inodes the kernel holds.\n# TYPE tierfs_fuse_inodes gauge\ntierfs_fuse_inodes {}\n",
        fs.inodes().len()
    ));
    out.push_str(&format!(
        "# HELP tierfs_fuse_open_files Files with open handles.\n# TYPE tierfs_fuse_open_files gauge\ntierfs_fuse_open_files {}\n",
        fs.inodes().all_open_files().len()
    ));
    out
}

fn respond(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request)?;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// `tierfs metrics`: fetches the text from a running daemon's endpoint.
pub fn fetch_metrics(addr: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .map_err(|e| format!("cannot reach the metrics endpoint at {addr}: {e}; is `tierfs mount --metrics-addr {addr}` running?"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("cannot send the request to {addr}: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("cannot read the answer from {addr}: {e}"))?;
    let (head, body) =
        response.split_once("\r\n\r\n").ok_or_else(|| format!("{addr} did not answer with HTTP"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{addr} answered `{}`", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_owned())
}
