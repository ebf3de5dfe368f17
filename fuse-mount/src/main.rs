//! `tierfs`: mount the store as a directory, and administer it.
//!
//! ```text
//! tierfs mount [--config FILE] [--root DIR] [--allow-other] MOUNTPOINT
//! tierfs unmount MOUNTPOINT
//! tierfs audit verify [--config FILE]
//! tierfs metrics [--addr HOST:PORT]
//! tierfs explain PRINCIPAL OPERATION KEY [--config FILE]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tierfs_core::access::{Principal, StorageOperationType};
use tierfs_core::config::BackendConfig;
use tierfs_core::StorageManager;
use tierfs_fuse::daemon::{self, MountOptions};
use tierfs_fuse::identity::IdentityMap;

/// TierFS: one storage layer with many faces.
#[derive(Debug, Parser)]
#[command(name = "tierfs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount the store at MOUNTPOINT and serve it until unmounted (in the foreground).
    Mount(MountArgs),
    /// Unmount a TierFS mount.
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Detach now even if files are open; the daemon exits once they are closed.
        #[arg(long)]
        lazy: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the metrics of a running daemon (Prometheus text format).
    Metrics {
        /// The daemon's `--metrics-addr`.
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: String,
    },
    /// Explain how an operation would be decided and routed.
    Explain {
        /// Who (a user id).
        principal: String,
        /// read, write, delete, list, batch or admin.
        operation: String,
        /// The key (a prefix for list).
        key: String,
        /// The configuration file (default: the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A role the principal holds (repeatable), e.g. `group:staff`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit log; exits 1 at the first broken link.
    Verify {
        /// The configuration file naming the log (`[audit] path`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    /// The configuration file (default: the embedded default, a local store).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory of the embedded default (default: $XDG_DATA_HOME/tierfs).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Let other users use the mount (FUSE `allow_other`); access rules and file modes still apply.
    #[arg(long)]
    allow_other: bool,
    /// Stay in the foreground (the default; accepted for compatibility).
    #[arg(long, short = 'f')]
    foreground: bool,
    /// Serve metrics (Prometheus text) over HTTP on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Principal for a uid instead of its user name: UID=NAME (repeatable).
    #[arg(long = "user-map", value_name = "UID=NAME")]
    user_map: Vec<String>,
    /// Role name for a gid instead of its group name: GID=NAME gives role `group:NAME` (repeatable).
    #[arg(long = "group-map", value_name = "GID=NAME")]
    group_map: Vec<String>,
    /// Seconds the kernel may cache names and attributes, and the daemon directory listings
    /// (0 disables caching). Default: 60 when the store is private to this daemon (local and
    /// memory backends) and the mount single-user, else 1.
    #[arg(long)]
    attr_timeout: Option<f64>,
    /// Directory for spool files of files being written (default: $TMPDIR).
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Threads reading kernel requests. A request that has to wait goes on as a task, so one
    /// thread keeps the mount responsive; more help only when requests do long disk work in
    /// place (many parallel readers of a local store whose files are not in the page cache).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Commit every change to the store before replying (no group commit; slower).
    #[arg(long)]
    sync: bool,
    /// Store extended attributes of the `user.` namespace (setfattr, cp -a, rsync -X) with each
    /// file and directory. Off by default: the kernel then asks for an attribute before every write.
    #[arg(long)]
    xattrs: bool,
    /// Passthrough reads (Linux 6.9 and later): a file opened only to read, whose value the store
    /// keeps as one local file, is read by the kernel straight from that file, while no access
    /// rule and no audit log are in force. Such a reader sees the file as it was when opened
    /// (see docs/semantics.md: `tail -f` does not see appends made through the mount meanwhile).
    #[arg(long)]
    passthrough: bool,
    /// Where to mount.
    mountpoint: PathBuf,
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // fuser warns about an unmount that already happened (`tierfs unmount`
    // from another process); its errors still show.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fuser=error")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mount(args) => mount(args),
        Command::Unmount { mountpoint, lazy } => daemon::unmount_path(&mountpoint, lazy),
        Command::Audit { command: AuditCommand::Verify { config } } => audit_verify(config),
        Command::Metrics { addr } => daemon::fetch_metrics(&addr).map(|text| print!("{text}")),
        Command::Explain { principal, operation, key, config, roles } => {
            explain(&principal, &operation, &key, config, roles)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tierfs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn mount(args: MountArgs) -> Result<(), String> {
    let mut identities = IdentityMap::default();
    for spec in &args.user_map {
        identities.add_user(spec)?;
    }
    for spec in &args.group_map {
        identities.add_group(spec)?;
    }
    if let Some(t) = args.attr_timeout.filter(|t| !(0.0..=86_400.0).contains(t)) {
        return Err(format!("--attr-timeout {t} is out of range; allowed: 0 to 86400 seconds"));
    }
    let _ = args.foreground;
    daemon::mount(MountOptions {
        mountpoint: args.mountpoint,
        config: args.config,
        root: args.root,
        allow_other: args.allow_other,
        threads: args.threads,
        attr_ttl: args.attr_timeout.map(Duration::from_secs_f64),
        spool_dir: args.spool_dir,
        metrics_addr: args.metrics_addr,
        identities,
        sync: args.sync,
        xattrs: args.xattrs,
        passthrough: args.passthrough,
    })
}

fn audit_verify(config: Option<PathBuf>) -> Result<(), String> {
    let config = daemon::load_config(config.as_deref(), None)?;
    let Some(audit) = config.audit_config() else {
        return Err(format!(
            "{} has no [audit] section; there is no log to verify",
            config.describe_source()
        ));
    };
    let report = tierfs_core::audit::verify(&audit).map_err(|e| e.to_string())?;
    match &report.first_break {
        None => {
            println!(
                "intact: {} records in {} file(s), from {}, up to its seal (record {})",
                report.records,
                report.files.len(),
                audit.path.display(),
                report.seal.as_ref().map_or(0, |s| s.seq),
            );
            Ok(())
        }
        Some(brk) => {
            println!("BROKEN ({}): {}:{}: {}", brk.kind, brk.file.display(), brk.line, brk.reason);
            println!("{} records verified before the break", report.records);
            Err(format!("the audit log is not intact: {} at {}:{}", brk.kind, brk.file.display(), brk.line))
        }
    }
}

/// Prints `StorageManager::explain`. The manager is built from the
/// configuration with every backend replaced by an empty memory backend of
/// the same name and no audit log: explaining touches no backend, and a
/// running daemon keeps its store and log to itself.
fn explain(
    principal: &str,
    operation: &str,
    key: &str,
    config: Option<PathBuf>,
    roles: Vec<String>,
) -> Result<(), String> {
    let mut config = daemon::load_config(config.as_deref(), None)?;
    let operation: StorageOperationType = operation.parse().map_err(|e: tierfs_core::Error| e.to_string())?;
    for backend in config.backends.values_mut() {
        *backend = BackendConfig { kind: "memory".into(), settings: Default::default() };
    }
    config.audit = None;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let manager = rt.block_on(StorageManager::open(config)).map_err(|e| e.to_string())?;
    let mut who = Principal::new(principal);
    for role in roles {
        who = who.with_role(role);
    }
    let explanation = manager.explain(&who, operation, key).map_err(|e| e.to_string())?;
    println!("{explanation}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn explain_runs_on_the_embedded_default() {
        explain("alice", "read", "a/b", None, vec![]).unwrap();
        assert!(explain("alice", "jump", "a/b", None, vec![]).is_err());
    }

    #[test]
    fn explain_reads_rules() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierfs.toml");
        let text = "[backends.main]\ntype = \"local\"\npath = \"data\"\n[access]\ndefault = \"none\"\n\
                    [[access.rules]]\nprincipal = \"alice\"\nresource = \"docs/\"\nlevel = \"read\"\n";
        std::fs::write(&file, text).unwrap();
        explain("alice", "read", "docs/x", Some(file.clone()), vec![]).unwrap();
        assert!(!dir.path().join("data").exists(), "explain opened no backend");
        assert!(audit_verify(Some(file)).is_err(), "no [audit] section");
    }
}
