#!/usr/bin/env bash
# Partial writes through the mount: what a change of part of a large file
# costs, against a native directory, rclone mount (local directory,
# --vfs-cache-mode writes) and the FUSE floor (fuse-mount/examples/floor.rs),
# in rotated order, ROUNDS rounds; the table gives medians and ranges.
#
#   scripts/bench-partial.sh [--output FILE] [--rounds N] [--seq-mib N] [--file-mib N] [--files N] [--cluster]
#
# Workloads:
#   fio-prealloc  fio sequential write, SEQ_MIB in 1 MiB blocks, fsync at the
#                 end, with fio's default preallocation (fallocate)
#   fio-none      the same with --fallocate=none
#   cold-read     fio sequential read of that file after dropping the page
#                 cache (tierfs is mounted with --passthrough)
#   small-*       FILES files of 4 KiB (scripts/fuse-smallfiles.py): create+write+
#                 close, stat, open+read+close, unlink, each timed on its own
#   sqlite        single-row commits on a 50 MiB SQLite database (synchronous=full)
#   byte          one-byte change + fsync in a FILE_MIB file (ms per change)
#   append        4 KiB append + fsync to a FILE_MIB file (ms per append)
# (The floor keeps nothing; it runs the fio and small-file workloads only.) For the daemons,
# the bytes written to disk during the workload (write_bytes of
# /proc/PID/io) are recorded too.
#
# --cluster also mounts tierfs over a three-node Garage cluster on loopback
# (scripts/services/garage.sh) and runs byte and append there, recording
# the bytes uploaded per change (the backend's request bodies, from the
# daemon's metrics: tierfs_network_sent_bytes_total).
#
# Needs root. Installs fio, rclone, fuse3, sqlite3 if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
OUTPUT=""
ROUNDS=3
SEQ_MIB=1024
FILE_MIB=1024
CLUSTER=0
FILES=10000
while (($# > 0)); do
    case "$1" in
        --output) OUTPUT="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seq-mib) SEQ_MIB="$2"; shift 2 ;;
        --file-mib) FILE_MIB="$2"; shift 2 ;;
        --files) FILES="$2"; shift 2 ;;
        --cluster) CLUSTER=1; shift ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if ((EUID != 0)); then
    echo "bench-partial.sh mounts and drops caches: run it as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive PATH="$HOME/.cargo/bin:$PATH"
missing=()
for pkg in fio rclone fuse3 python3 curl; do
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
PARTIAL="$ROOT/scripts/fuse-partial.py"

BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench-partial}"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
DAEMON_PID=""
MNT=""
GARAGE_DIR=""

cleanup() {
    stop_mount
    [[ -n "$GARAGE_DIR" ]] && bash "$ROOT/scripts/services/garage.sh" stop "$GARAGE_DIR" >/dev/null 2>&1 || true
    return 0
}
trap cleanup EXIT

written_bytes() {
    [[ -n "$DAEMON_PID" ]] || { echo 0; return; }
    awk '/^write_bytes:/ { print $2 }' "/proc/$DAEMON_PID/io"
}

# Bytes the cluster mount's backend has sent to the store (request bodies,
# from its metrics: tierfs_network_sent_bytes_total).
uploaded_bytes() {
    "$TIERFS" metrics --addr 127.0.0.1:9464 |
        awk '/^tierfs_network_sent_bytes_total\{backend="cluster"\}/ { print $2; found = 1 } END { exit !found }'
}

# record ROUND TARGET WORKLOAD VALUE UNIT BYTES
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    printf '  round %s %-14s %-13s %10s %-9s %s bytes written\n' "$@"
}

# fio_bw FILE [read|write]: bandwidth in MiB/s from fio's JSON output.
fio_bw() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]; print("%.1f" % (j["bw_bytes"] / 1048576))' "$1" "${2:-write}"
}

# timed ROUND TARGET WORKLOAD UNIT COMMAND...: runs COMMAND (printing one number) and records it.
timed() {
    local round="$1" target="$2" workload="$3" unit="$4" before value
    shift 4
    drop_caches
    before="$(written_bytes)"
    value="$("$@")"
    record "$round" "$target" "$workload" "$value" "$unit" "$(($(written_bytes) - before))"
}

run_workloads() {
    local round="$1" target="$2" dir="$3" prealloc before
    mkdir -p "$dir/work"
    for prealloc in native none; do
        rm -f "$dir/work/seq.bin"
        drop_caches
        before="$(written_bytes)"
        fio --name=seqwrite --filename="$dir/work/seq.bin" --rw=write --bs=1M --size="${SEQ_MIB}M" \
            --ioengine=psync --end_fsync=1 --fallocate="$prealloc" \
            --output-format=json --output="$BENCH_DIR/fio.json" >/dev/null
        local name=fio-prealloc
        [[ "$prealloc" == none ]] && name=fio-none
        record "$round" "$target" "$name" "$(fio_bw "$BENCH_DIR/fio.json")" MiB/s "$(($(written_bytes) - before))"
    done
    if [[ "$target" != floor ]]; then
        # Cold sequential read of the file just written (the floor keeps nothing).
        drop_caches
        before="$(written_bytes)"
        fio --name=seqread --filename="$dir/work/seq.bin" --rw=read --bs=1M --size="${SEQ_MIB}M" \
            --ioengine=psync --output-format=json --output="$BENCH_DIR/fio.json" >/dev/null
        record "$round" "$target" cold-read "$(fio_bw "$BENCH_DIR/fio.json" read)" MiB/s "$(($(written_bytes) - before))"
    fi
    rm -f "$dir/work/seq.bin"
    # Small files: each phase timed on its own (ops/s).
    drop_caches
    before="$(written_bytes)"
    python3 "$ROOT/scripts/fuse-smallfiles.py" "$dir/work/small" --files "$FILES" >"$BENCH_DIR/small.json"
    local phase
    for phase in create stat read unlink; do
        record "$round" "$target" "small-$phase" \
            "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$BENCH_DIR/small.json" "$phase")" \
            ops/s "$(($(written_bytes) - before))"
    done
    [[ "$target" == floor ]] && return 0
    timed "$round" "$target" sqlite commits/s python3 "$PARTIAL" "$dir/work" sqlite
    timed "$round" "$target" byte ms python3 "$PARTIAL" "$dir/work" byte --file-mib "$FILE_MIB"
    timed "$round" "$target" append ms python3 "$PARTIAL" "$dir/work" append --file-mib "$FILE_MIB"
}

start_target() {
    local target="$1" base="$BENCH_DIR/$1"
    rm -rf "$base"
    mkdir -p "$base/mnt"
    MNT="$base/mnt"
    case "$target" in
        native) MNT="" ; mkdir -p "$base/dir" ;;
        tierfs)
            mkdir -p "$base/data" "$base/spool"
            "$TIERFS" mount --root "$base/data" --spool-dir "$base/spool" --passthrough "$base/mnt" 2>"$base.log" &
            DAEMON_PID=$! ;;
        floor)
            "$FLOOR" "$base/mnt" 2>"$base.log" &
            DAEMON_PID=$! ;;
        rclone)
            mkdir -p "$base/src" "$base/cache"
            rclone mount "$base/src" "$base/mnt" --vfs-cache-mode writes --cache-dir "$base/cache" \
                --config /dev/null 2>"$base.log" &
            DAEMON_PID=$! ;;
    esac
    [[ -z "$MNT" ]] || wait_mounted "$MNT"
}

stop_target() {
    if [[ -n "$MNT" ]]; then
        umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
    fi
    if [[ -n "$DAEMON_PID" ]]; then
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    MNT="" DAEMON_PID=""
    rm -rf "$BENCH_DIR/$1"
}

TARGETS=(native tierfs rclone floor)
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    for i in "${!TARGETS[@]}"; do
        target="${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}"
        start_target "$target"
        dir="$BENCH_DIR/$target/mnt"
        [[ "$target" == native ]] && dir="$BENCH_DIR/native/dir"
        run_workloads "$round" "$target" "$dir"
        stop_target "$target"
    done
done

if ((CLUSTER)); then
    GARAGE_DIR="$BENCH_DIR/garage"
    GARAGE_PORT_BASE="${GARAGE_PORT_BASE:-49100}" bash "$ROOT/scripts/services/garage.sh" start "$GARAGE_DIR" >/dev/null
    # shellcheck disable=SC1091
    . "$GARAGE_DIR/env"
    cluster_configs "$BENCH_DIR"
    for round in $(seq 1 "$ROUNDS"); do
        mkdir -p "$BENCH_DIR/cluster/mnt"
        MNT="$BENCH_DIR/cluster/mnt"
        "$TIERFS" mount --config "$BENCH_DIR/tierfs-s3.toml" --spool-dir "$BENCH_DIR/cluster" \
            --metrics-addr 127.0.0.1:9464 "$MNT" 2>"$BENCH_DIR/cluster.log" &
        DAEMON_PID=$!
        wait_mounted "$MNT"
        for workload in byte append; do
            python3 "$PARTIAL" "$MNT/warm" byte --changes 1 --file-mib 1 >/dev/null
            before="$(uploaded_bytes)"
            value="$(python3 "$PARTIAL" "$MNT/work" "$workload" --changes 5 --file-mib "$FILE_MIB")"
            # Bytes uploaded per change: the file's creation is uploaded once, not counted.
            per_change=$(( ($(uploaded_bytes) - before - FILE_MIB * 1048576) / 5 ))
            record "$round" tierfs-cluster "$workload" "$value" ms "$per_change"
        done
        stop_target cluster
    done
fi

TABLE="$(python3 - "$RESULTS" "$SEQ_MIB" "$FILE_MIB" "$FILES" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
seq_mib, file_mib, files = sys.argv[2], sys.argv[3], sys.argv[4]
values, written, units, order = {}, {}, {}, []
for rnd, target, workload, value, unit, nbytes in rows:
    values.setdefault((target, workload), []).append(float(value))
    written.setdefault((target, workload), []).append(int(nbytes))
    units[workload] = unit
    if workload not in order:
        order.append(workload)
names = {
    "fio-prealloc": "fio sequential write %s MiB, fsync at the end, default preallocation" % seq_mib,
    "fio-none": "the same, --fallocate=none",
    "cold-read": "fio sequential read of that file, page cache dropped first (passthrough on tierfs)",
    "small-create": "%s x 4 KiB files: create+write+close" % files,
    "small-stat": "%s files: stat" % files,
    "small-read": "%s files: open+read+close" % files,
    "small-unlink": "%s files: unlink" % files,
    "sqlite": "SQLite single-row commits, 50 MiB database",
    "byte": "one-byte change + fsync in a %s MiB file" % file_mib,
    "append": "4 KiB append + fsync to a %s MiB file" % file_mib,
}
targets = ["native", "tierfs", "rclone", "floor"]
def cell(t, w):
    v = values.get((t, w))
    if not v:
        return "-"
    med = statistics.median(v)
    return "%.1f (%.1f-%.1f)" % (med, min(v), max(v)) if len(v) > 1 else "%.1f" % med
def med(t, w):
    v = values.get((t, w))
    return statistics.median(v) if v else None
print("| workload | unit | " + " | ".join(targets) + " | tierfs / native | tierfs / floor | tierfs / rclone | tierfs bytes written per run (median) |")
print("|---|---|" + "---|" * len(targets) + "---|---|---|---|")
for w in order:
    t, n, f, r = med("tierfs", w), med("native", w), med("floor", w), med("rclone", w)
    lower_better = units[w] == "ms"
    ratio = lambda a, b: "-" if a is None or b is None else "%.2fx" % ((b / a) if lower_better else (a / b))
    wb = written.get(("tierfs", w))
    wb = "%.1f MiB" % (statistics.median(wb) / 1048576) if wb else "-"
    print("| %s | %s | %s | %s | %s | %s | %s |" % (
        names.get(w, w), units[w], " | ".join(cell(x, w) for x in targets), ratio(t, n), ratio(t, f), ratio(t, r), wb))
print()
print("Ratios are speed ratios (for times, the inverse of the time ratio): above 1 is faster.")
cluster = [w for w in order if ("tierfs-cluster", w) in values]
if cluster:
    print()
    print("| over the Garage cluster | time per change, ms | uploaded per change (median) |")
    print("|---|---|---|")
    for w in cluster:
        up = statistics.median(written[("tierfs-cluster", w)]) / 1048576
        print("| %s | %s | %.2f MiB |" % (names.get(w, w), cell("tierfs-cluster", w), up))
EOF
)"
echo
echo "$TABLE"
if [[ -n "$OUTPUT" ]]; then
    {
        echo "Run on $(date -u +%Y-%m-%d) ($(uname -r), $(nproc) cores); reproduce with \`scripts/bench-partial.sh --rounds $ROUNDS$( ((CLUSTER)) && echo " --cluster")\`."
        echo
        echo "$TABLE"
    } >"$OUTPUT"
    echo "table written to $OUTPUT"
fi
# Garage's nodes are stopped through the pid files in the directory: first.
cleanup
GARAGE_DIR=""
rm -rf "$BENCH_DIR"
