#!/usr/bin/env bash
# Attribute changes of closed files: what `chmod`, `chown` and `touch -m`
# (utimensat) cost on a file of 4 KiB and of SIZE_MIB (default 1024), on a
# native directory, `tierfs mount` over the local backend, `tierfs mount`
# over a three-node Garage cluster (`s3` backend) and `s3fs` on the same
# bucket (which, like TierFS, copies the object onto itself with new
# metadata), in one run.
#
#   scripts/bench-metadata.sh [--output FILE] [--size-mib N] [--calls N] [--rounds N]
#
# Also what serving extended attributes costs writes: `tierfs mount` over the
# local backend with and without `--xattrs`, 20000 write(2) calls of 4 KiB
# into one file (the kernel asks a mount that serves attributes for
# `security.capability` before each write), in the same rotated rounds.
#
# Each target gets ROUNDS turns (default 3) in a rotated order; in each turn
# every file is written and closed, then each call is made CALLS times
# (default 20) and timed alone. The table gives the median of every call
# over all rounds, and its ratio to the native directory. Before the
# metadata-only update, each of these calls on a closed file rewrote the
# file: the `rewrite` column is the time `cp` takes to copy the file within
# the same target, what such a call used to cost.
#
# Needs root (mounts, chown). Starts its own Garage cluster (GARAGE_PORT_BASE,
# default 42000) under BENCH_DIR (default /var/tmp/tierfs-bench-meta) and
# removes everything at the end. Installs s3fs and fuse3 if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
OUTPUT=""
SIZE_MIB=1024
CALLS=20
ROUNDS=3
while (($# > 0)); do
    case "$1" in
        --output) OUTPUT="$2"; shift 2 ;;
        --size-mib) SIZE_MIB="$2"; shift 2 ;;
        --calls) CALLS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if ((EUID != 0)); then
    echo "bench-metadata.sh mounts and changes owners: run it as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive PATH="$HOME/.cargo/bin:$PATH"
unset AWS_CA_BUNDLE SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE || true
export GARAGE_PORT_BASE="${GARAGE_PORT_BASE:-42000}"
missing=()
for pkg in s3fs fuse3 python3; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
command -v garage >/dev/null || cargo install --locked garage@2.5.0

cd "$ROOT"
cargo build -q -p tierfs-fuse --release --bin tierfs
TIERFS="$ROOT/target/release/tierfs"

BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench-meta}"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
DAEMON_PID=""
MNT=""

cleanup() {
    if [[ -n "$MNT" ]]; then
        umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    fi
    if [[ -n "$DAEMON_PID" ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    bash "$ROOT/scripts/services/garage.sh" stop "$BENCH_DIR/garage" || true
    rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

bash scripts/services/garage.sh start "$BENCH_DIR/garage" >/dev/null
set -a
# shellcheck disable=SC1091
. "$BENCH_DIR/garage/env"
set +a
cluster_configs "$BENCH_DIR"

mount_target() {
    local target="$1" dir="$BENCH_DIR/$1"
    mkdir -p "$dir"
    case "$target" in
        native) MNT=""; mkdir -p "$dir/mnt"; return ;;
    esac
    MNT="$dir/mnt"
    mkdir -p "$MNT" "$dir/spool"
    case "$target" in
        tierfs) "$TIERFS" mount --root "$dir/data" --spool-dir "$dir/spool" "$MNT" >>"$dir/log" 2>&1 & ;;
        tierfs-xattrs) "$TIERFS" mount --xattrs --root "$dir/data" --spool-dir "$dir/spool" "$MNT" \
            >>"$dir/log" 2>&1 & ;;
        tierfs-s3) "$TIERFS" mount --config "$BENCH_DIR/tierfs-s3.toml" --spool-dir "$dir/spool" "$MNT" \
            >>"$dir/log" 2>&1 & ;;
        s3fs) s3fs "$TIERFS_S3_BUCKET" "$MNT" -f -o "passwd_file=$BENCH_DIR/s3fs.passwd" \
            -o use_path_request_style -o "url=http://127.0.0.1:$S3_PORT" -o "endpoint=$TIERFS_S3_REGION" \
            >>"$dir/log" 2>&1 & ;;
    esac
    DAEMON_PID=$!
    wait_mounted "$MNT"
}

unmount_target() {
    [[ -n "$MNT" ]] || return 0
    umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    MNT=""
}

# turn TARGET: one round of every call on every size, appended to RESULTS.
turn() {
    local target="$1" work="$BENCH_DIR/$1/mnt/work-$2"
    python3 - "$target" "$work" "$SIZE_MIB" "$CALLS" >>"$RESULTS" <<'EOF'
import os, shutil, subprocess, sys, time

target, work, size_mib, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(work)
block = os.urandom(1 << 20)
for label, size in (("4KiB", 4096), (f"{size_mib}MiB", size_mib << 20)):
    path = os.path.join(work, label)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())
    # The kernel releases the file after close returns; let it.
    time.sleep(1)
    start = time.perf_counter()
    subprocess.run(["cp", path, path + ".copy"], check=True)
    print(f"{target}\t{label}\trewrite\t{(time.perf_counter() - start) * 1000:.3f}")
    os.unlink(path + ".copy")
    for i in range(calls):
        for call, fn in (
            ("chmod", lambda: os.chmod(path, 0o600 if i % 2 else 0o644)),
            ("chown", lambda: os.chown(path, 1000 + i % 2, 1000 + i % 2)),
            ("utimes", lambda: os.utime(path, (1_000_000_000 + i, 1_000_000_000 + i))),
        ):
            start = time.perf_counter()
            fn()
            print(f"{target}\t{label}\t{call}\t{(time.perf_counter() - start) * 1000:.3f}")
    os.unlink(path)
shutil.rmtree(work)
EOF
}

# writes TARGET ROUND: milliseconds for 20000 writes of 4 KiB into one file.
writes() {
    local target="$1" file="$BENCH_DIR/$1/mnt/writes-$2"
    python3 - "$target" "$file" >>"$RESULTS" <<'EOF'
import os, sys, time
target, path = sys.argv[1], sys.argv[2]
block = os.urandom(4096)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
start = time.perf_counter()
for _ in range(20000):
    os.write(fd, block)
elapsed = time.perf_counter() - start
os.close(fd)
os.unlink(path)
print(f"{target}\twrites\t20000x4KiB\t{elapsed * 1000:.3f}")
EOF
}

TARGETS=(native tierfs tierfs-s3 s3fs tierfs-xattrs)
for round in $(seq 1 "$ROUNDS"); do
    n=${#TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do
        target="${TARGETS[$(((i + round - 1) % n))]}"
        echo "round $round: $target"
        mount_target "$target"
        case "$target" in
            tierfs-xattrs) writes "$target" "$round" ;;
            tierfs) turn "$target" "$round"; writes "$target" "$round" ;;
            *) turn "$target" "$round" ;;
        esac
        unmount_target
    done
done

TABLE="$(python3 - "$RESULTS" "$ROUNDS" "$CALLS" <<'EOF'
import statistics, sys
from collections import defaultdict
samples = defaultdict(list)
writes = defaultdict(list)
for line in open(sys.argv[1]):
    target, size, call, ms = line.split("\t")
    if size == "writes":
        writes[target].append(float(ms))
        continue
    samples[(target, size, call)].append(float(ms))
targets = ["native", "tierfs", "tierfs-s3", "s3fs"]
sizes = sorted({k[1] for k in samples}, key=lambda s: (len(s), s))
print(f"rounds {sys.argv[2]}, {sys.argv[3]} calls of each per round; median ms per call (x native)\n")
print("| size | call | " + " | ".join(targets) + " |")
print("|---|---|" + "---|" * len(targets))
for size in sizes:
    for call in ("chmod", "chown", "utimes", "rewrite"):
        native = statistics.median(samples[("native", size, call)])
        cells = []
        for t in targets:
            m = statistics.median(samples[(t, size, call)])
            cells.append(f"{m:.3f}" if t == "native" else f"{m:.3f} ({m / native:.1f}x)")
        print(f"| {size} | {call} | " + " | ".join(cells) + " |")
plain, served = statistics.median(writes["tierfs"]), statistics.median(writes["tierfs-xattrs"])
print(f"\n20000 writes of 4 KiB into one file on tierfs (local): {plain:.0f} ms without --xattrs, "
      f"{served:.0f} ms with ({served / plain:.2f}x)")
EOF
)"
echo "$TABLE"
if [[ -n "$OUTPUT" ]]; then
    echo "$TABLE" >"$OUTPUT"
fi
