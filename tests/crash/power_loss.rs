//! Power loss, not only SIGKILL: a SIGKILL leaves the kernel's page cache
//! intact, so it cannot catch a missing `fsync`. Here the store lives on
//! an ext4 file system in a loop-mounted image; the writer is frozen
//! (SIGSTOP) at a random moment and the image is copied as the device
//! holds it then: what was fsynced, without what sat in the page cache.
//! That copy, mounted (the journal replayed as after a power cut), must
//! hold every acknowledged operation, whole.
//!
//! The file system is mounted `data=writeback,noauto_da_alloc`: no data
//! ordering and no flush-on-rename heuristic, so a blob whose data was not
//! fsynced before its record was committed shows as torn or missing.
//! `TIERFS_POWER_LOSS_SEEDS` sets the number of seeds (default 8). Needs
//! root (loop devices); fails under `CI=true` without it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tierfs_tests::crash::Rng;

use super::check_store;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A file system image attached to a loop device and mounted; undone on drop.
struct Mounted {
    device: String,
    at: PathBuf,
}

impl Mounted {
    fn new(image: &Path, at: &Path) -> Mounted {
        let device = run(Command::new("losetup").args(["--find", "--show"]).arg(image));
        std::fs::create_dir_all(at).unwrap();
        let mounted = Mounted { device, at: at.to_path_buf() };
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "data=writeback,noauto_da_alloc", &mounted.device])
            .arg(at));
        mounted
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn can_use_loop_devices() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the power loss test needs root, which CI=true requires"
    );
    eprintln!("skipped: loop devices need root");
    false
}

/// Runs the writer on the mounted image until a random moment, freezes it,
/// copies the image to `copy`, then kills it. Returns the number of
/// operations acknowledged before the freeze.
fn run_and_cut_power(store: &Path, image: &Path, copy: &Path, seed: u64) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(store)
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crash-writer");
    let stdout = child.stdout.take().expect("piped");
    let last = Arc::new(Mutex::new(None::<u64>));
    let seen = last.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                *seen.lock().unwrap() = Some(n.parse().expect("ack index"));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200 + Rng::new(seed).below(1500)));
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    wait_stopped(child.id());
    // The device as it is now: the power is cut here. Nothing the writer
    // printed before the freeze can have missed this image.
    run(Command::new("cp").arg("--sparse=always").arg(image).arg(copy));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().expect("wait");
    assert!(status.code().is_none(), "crash-writer exited by itself: {status}");
    // Every ack the writer printed before the freeze is read by now.
    reader.join().expect("reader thread");
    let acked = last.lock().unwrap().map_or(0, |l| l + 1);
    acked
}

/// Waits until every thread of `pid` is stopped (a stop takes effect only
/// when a thread leaves the system call it is in, such as an `fsync`).
fn wait_stopped(pid: u32) {
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().all(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['T', 't']))
        })
    };
    for _ in 0..3000 {
        if stopped() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("crash-writer did not stop within 30 s of SIGSTOP");
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_power_loss() {
    if !can_use_loop_devices() {
        return;
    }
    let seeds: u64 = std::env::var("TIERFS_POWER_LOSS_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut total_acked = 0;
    for seed in 1..=seeds {
        let dir = tempfile::tempdir().unwrap();
        let (image, copy) = (dir.path().join("disk.img"), dir.path().join("after-power-loss.img"));
        std::fs::File::create(&image).unwrap().set_len(256 << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let acked = {
            let live = Mounted::new(&image, &dir.path().join("live"));
            run_and_cut_power(&live.at.join("store"), &image, &copy, seed)
        };
        total_acked += acked;
        println!("seed {seed}: power cut after {acked} acknowledged operations");
        let after = Mounted::new(&copy, &dir.path().join("after"));
        check_store(&after.at.join("store"), seed, acked).await;
    }
    assert!(total_acked > seeds, "the workload barely ran ({total_acked} operations in {seeds} runs)");
    println!("{seeds} power cuts, {total_acked} acknowledged operations checked");
}
