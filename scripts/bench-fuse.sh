#!/usr/bin/env bash
# FUSE benchmarks: a native directory, `tierfs mount` over the local backend,
# `rclone mount` of a local directory, and `floor` (fuse-mount/examples/floor.rs:
# a FUSE file system in memory that answers every request at once, so what it
# cannot reach is the kernel's round trip, not TierFS), in one run on one disk.
#
#   scripts/bench-fuse.sh [--output FILE] [--files N] [--seq-mib N] [--rand-mib N]
#
# Workloads (fio 3, psync):
#   seq-write   1 GiB in 1 MiB blocks, fsync at the end
#   seq-read    the same file, after `echo 3 > /proc/sys/vm/drop_caches`
#   rand-read   RAND_MIB of 4 KiB random reads of that file (fio randrepeat: the same
#               offsets on every target), caches dropped first; a fixed amount rather
#               than a fixed time, so a faster target does not turn into a cache test
#   small files N files of 4 KiB (scripts/fuse-smallfiles.py): create+write+close,
#               stat, read, unlink, each phase timed on its own
# For each workload the daemon's CPU seconds (utime+stime from /proc/PID/stat)
# and peak RSS (VmHWM from /proc/PID/status, reset through clear_refs before
# the workload) are recorded.
#
# Needs root (mounts, drop_caches). Installs fio, rclone and fuse3 if missing.
# Everything lives under BENCH_DIR (default /var/tmp/tierfs-bench), so all the
# targets share one file system; it is removed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
OUTPUT=""
FILES=20000
SEQ_MIB=1024
RAND_MIB=128
while (($# > 0)); do
    case "$1" in
        --output) OUTPUT="$2"; shift 2 ;;
        --files) FILES="$2"; shift 2 ;;
        --seq-mib) SEQ_MIB="$2"; shift 2 ;;
        --rand-mib) RAND_MIB="$2"; shift 2 ;;
        -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if ((EUID != 0)); then
    echo "bench-fuse.sh mounts and drops caches: run it as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive PATH="$HOME/.cargo/bin:$PATH"
missing=()
for pkg in fio rclone fuse3 python3; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

cd "$ROOT"
cargo build -q -p tierfs-fuse --release --bin tierfs --example floor
TIERFS="$ROOT/target/release/tierfs"
FLOOR="$ROOT/target/release/examples/floor"

BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench}"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
DAEMON_PID=""
MOUNTS=()

cleanup() {
    local m
    for m in "${MOUNTS[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [[ -n "$DAEMON_PID" ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# sample_begin / sample_end: CPU seconds and peak RSS (MiB) of the daemon over one workload.
SAMPLE_CPU=0
sample_begin() {
    [[ -n "$DAEMON_PID" ]] || return 0
    echo 5 >"/proc/$DAEMON_PID/clear_refs"
    SAMPLE_CPU="$(cpu_seconds "$DAEMON_PID")"
}
sample_end() {
    if [[ -z "$DAEMON_PID" ]]; then
        echo "- -"
        return
    fi
    local cpu rss
    cpu="$(awk -v a="$SAMPLE_CPU" -v b="$(cpu_seconds "$DAEMON_PID")" 'BEGIN { printf "%.2f", b - a }')"
    rss="$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$DAEMON_PID/status")"
    echo "$cpu $rss"
}

# record TARGET WORKLOAD VALUE UNIT CPU RSS
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    printf '  %-8s %-14s %12s %-6s cpu %6ss  peak rss %5s MiB\n' "$@"
}

fio_json() {
    python3 -c '
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["read"] if job["read"]["io_bytes"] > 0 else job["write"]
print(sys.argv[2] == "iops" and "%.0f" % side["iops"] or "%.1f" % (side["bw_bytes"] / 1048576))
' "$1" "$2"
}

run_workloads() {
    local target="$1" dir="$2" out
    mkdir -p "$dir/work"
    echo "== $target ($dir)"

    drop_caches
    sample_begin
    fio --name=seqwrite --filename="$dir/work/seq.bin" --rw=write --bs=1M --size="${SEQ_MIB}M" \
        --ioengine=psync --end_fsync=1 --fallocate=none --output-format=json --output="$BENCH_DIR/fio.json" >/dev/null
    out="$(sample_end)"
    record "$target" seq-write "$(fio_json "$BENCH_DIR/fio.json" bw)" MiB/s $out

    drop_caches
    sample_begin
    fio --name=seqread --filename="$dir/work/seq.bin" --rw=read --bs=1M --size="${SEQ_MIB}M" \
        --ioengine=psync --output-format=json --output="$BENCH_DIR/fio.json" >/dev/null
    out="$(sample_end)"
    record "$target" seq-read-cold "$(fio_json "$BENCH_DIR/fio.json" bw)" MiB/s $out

    drop_caches
    sample_begin
    fio --name=randread --filename="$dir/work/seq.bin" --rw=randread --bs=4k --size="${SEQ_MIB}M" \
        --ioengine=psync --io_size="${RAND_MIB}M" --norandommap --randrepeat=1 \
        --output-format=json --output="$BENCH_DIR/fio.json" >/dev/null
    out="$(sample_end)"
    record "$target" rand-read-4k "$(fio_json "$BENCH_DIR/fio.json" iops)" IOPS $out
    rm -f "$dir/work/seq.bin"

    drop_caches
    sample_begin
    local json
    json="$(python3 "$ROOT/scripts/fuse-smallfiles.py" "$dir/work/small" --files "$FILES" --size 4096)"
    out="$(sample_end)"
    local phase
    for phase in create stat read unlink; do
        record "$target" "small-$phase" "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$json" "$phase")" ops/s $out
    done
}

# 1. Native directory.
mkdir -p "$BENCH_DIR/native"
run_workloads native "$BENCH_DIR/native"

# 2. tierfs over the local backend (the embedded default), spool on the same disk.
mkdir -p "$BENCH_DIR/tierfs/mnt" "$BENCH_DIR/tierfs/data" "$BENCH_DIR/tierfs/spool"
"$TIERFS" mount --root "$BENCH_DIR/tierfs/data" --spool-dir "$BENCH_DIR/tierfs/spool" "$BENCH_DIR/tierfs/mnt" \
    2>"$BENCH_DIR/tierfs.log" &
DAEMON_PID=$!
MOUNTS+=("$BENCH_DIR/tierfs/mnt")
wait_mounted "$BENCH_DIR/tierfs/mnt"
run_workloads tierfs "$BENCH_DIR/tierfs/mnt"
"$TIERFS" unmount "$BENCH_DIR/tierfs/mnt"
wait "$DAEMON_PID"
DAEMON_PID=""

# 3. The floor: FUSE itself, nothing behind it.
mkdir -p "$BENCH_DIR/floor/mnt"
"$FLOOR" "$BENCH_DIR/floor/mnt" 2>"$BENCH_DIR/floor.log" &
DAEMON_PID=$!
MOUNTS+=("$BENCH_DIR/floor/mnt")
wait_mounted "$BENCH_DIR/floor/mnt"
run_workloads floor "$BENCH_DIR/floor/mnt"
umount "$BENCH_DIR/floor/mnt"
wait "$DAEMON_PID" || true
DAEMON_PID=""

# 4. rclone mount of a local directory, write cache on the same disk.
mkdir -p "$BENCH_DIR/rclone/mnt" "$BENCH_DIR/rclone/src" "$BENCH_DIR/rclone/cache"
rclone mount "$BENCH_DIR/rclone/src" "$BENCH_DIR/rclone/mnt" --vfs-cache-mode writes \
    --cache-dir "$BENCH_DIR/rclone/cache" --config /dev/null 2>"$BENCH_DIR/rclone.log" &
DAEMON_PID=$!
MOUNTS+=("$BENCH_DIR/rclone/mnt")
wait_mounted "$BENCH_DIR/rclone/mnt"
run_workloads rclone "$BENCH_DIR/rclone/mnt"
fusermount3 -u "$BENCH_DIR/rclone/mnt" || umount "$BENCH_DIR/rclone/mnt"
wait "$DAEMON_PID" || true
DAEMON_PID=""

# The table: values, ratios to native, tierfs against rclone and the floor, daemon CPU and RSS.
TABLE="$(python3 - "$RESULTS" "$SEQ_MIB" "$FILES" "$RAND_MIB" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
seq_mib, files, rand_mib = sys.argv[2], sys.argv[3], sys.argv[4]
data = {}
order = []
for target, workload, value, unit, cpu, rss in rows:
    data[(target, workload)] = (float(value), unit, cpu, rss)
    if workload not in order:
        order.append(workload)
names = {
    "seq-write": "sequential write %s MiB, 1 MiB blocks, fsync" % seq_mib,
    "seq-read-cold": "sequential read, cold cache",
    "rand-read-4k": "4 KiB random reads (%s MiB of them), cold cache" % rand_mib,
    "small-create": "%s x 4 KiB files: create+write+close" % files,
    "small-stat": "%s files: stat" % files,
    "small-read": "%s files: open+read+close" % files,
    "small-unlink": "%s files: unlink" % files,
}
print("| workload | native | tierfs | rclone | floor | tierfs / native | rclone / native | floor / native | tierfs / rclone | tierfs / floor | tierfs CPU s, peak RSS MiB | rclone CPU s, peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for w in order:
    n, t, r, f = (data[(target, w)] for target in ("native", "tierfs", "rclone", "floor"))
    unit = n[1]
    fmt = lambda v: ("%.0f" % v[0]) + " " + unit
    print("| %s | %s | %s | %s | %s | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %s, %s | %s, %s |" % (
        names.get(w, w), fmt(n), fmt(t), fmt(r), fmt(f), t[0] / n[0], r[0] / n[0], f[0] / n[0],
        t[0] / r[0], t[0] / f[0], t[2], t[3], r[2], r[3]))
EOF
)"
echo
echo "$TABLE"
if [[ -n "$OUTPUT" ]]; then
    {
        echo "Run on $(date -u +%Y-%m-%d) ($(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)); reproduce with \`scripts/bench-fuse.sh\`."
        echo
        echo "$TABLE"
    } >"$OUTPUT"
    echo "table written to $OUTPUT"
fi
rm -rf "$BENCH_DIR"
