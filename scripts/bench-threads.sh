#!/usr/bin/env bash
# The mount's kernel-request threads: small-file creation against the
# do-nothing FUSE floor, and parallel reads of a file not in the page cache
# against the native disk, with the mount's default single request thread
# and with eight:
#
#   scripts/bench-threads.sh [--rounds N] [--files N] [--output FILE]
#
# Each round runs every target in an order rotated each round:
# - create: FILES files of 4 KiB made one after another in one directory
#   (open O_CREAT|O_TRUNC, write, close), as a shell loop or an unpacking
#   tool does, on the floor (fuse-mount/examples/floor.rs, 8 threads),
#   `tierfs mount` (embedded local store) and `tierfs mount --threads 8`;
#   creates per second and the daemon's CPU per create (utime + stime from
#   its start to the end of the loop, divided by FILES);
# - parallel cold reads: a 512 MiB file written, the page cache dropped,
#   then fio with 4 jobs reading random 64 KiB blocks for 5 s, on the
#   native disk and both mounts (MiB/s).
# Reports medians (and ranges) and ratios to the floor (create) and to
# native (reads). Needs root; installs fio if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
ROUNDS=5
FILES=5000
OUTPUT=""
while (($# > 0)); do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --files) FILES="$2"; shift 2 ;;
        --output) OUTPUT="$2"; shift 2 ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if ((EUID != 0)); then
    echo "bench-threads.sh mounts and drops caches: run it as root" >&2
    exit 1
fi

command -v fio >/dev/null || { apt-get update -q </dev/null && apt-get install -y -q fio </dev/null; }
cd "$ROOT"
cargo build -q -p tierfs-fuse --release --bin tierfs --example floor
TIERFS="$ROOT/target/release/tierfs"
FLOOR="$ROOT/target/release/examples/floor"
BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench-threads}"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
DAEMON_PID=""
MNT=""

trap stop_mount EXIT

# mount_target TARGET BASE: mounts TARGET (not native) at BASE/mnt.
mount_target() {
    local target="$1" base="$2"
    mkdir -p "$base/mnt" "$base/data" "$base/spool"
    MNT="$base/mnt"
    case "$target" in
        floor) "$FLOOR" "$MNT" 2>"$base.log" & ;;
        tierfs) "$TIERFS" mount --root "$base/data" --spool-dir "$base/spool" "$MNT" 2>"$base.log" & ;;
        tierfs-8-threads)
            "$TIERFS" mount --root "$base/data" --spool-dir "$base/spool" --threads 8 "$MNT" 2>"$base.log" & ;;
    esac
    DAEMON_PID=$!
    wait_mounted "$MNT"
}

# create ROUND TARGET: mounts TARGET, creates the files, unmounts, records.
create() {
    local round="$1" target="$2" base="$BENCH_DIR/$2" rate cpu
    rm -rf "$base"
    mount_target "$target" "$base"
    mkdir -p "$MNT/d"
    rate="$(python3 - "$MNT/d" "$FILES" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
payload = os.urandom(4096)
start = time.perf_counter()
for i in range(n):
    fd = os.open("%s/f%06d" % (d, i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, payload)
    os.close(fd)
print("%.1f" % (n / (time.perf_counter() - start)))
EOF
)"
    cpu="$(cpu_seconds "$DAEMON_PID")"
    stop_mount
    printf '%s\tcreate\t%s\t%s\t%s\n' "$round" "$target" "$rate" "$cpu" >>"$RESULTS"
    printf '  round %s create %-16s %10s creates/s %8s s of daemon CPU\n' "$round" "$target" "$rate" "$cpu"
}

# reads ROUND TARGET: parallel random reads of a cold 512 MiB file.
reads() {
    local round="$1" target="$2" base="$BENCH_DIR/$2" dir bw
    rm -rf "$base"
    if [[ "$target" == native ]]; then
        dir="$base/dir"
        mkdir -p "$dir"
    else
        mount_target "$target" "$base"
        dir="$MNT"
    fi
    dd if=/dev/urandom of="$dir/cold.bin" bs=1M count=512 status=none
    drop_caches
    fio --name=cold --filename="$dir/cold.bin" --rw=randread --bs=64k --size=512M --numjobs=4 \
        --time_based --runtime=5 --group_reporting --output-format=json --output="$base.json" >/dev/null
    bw="$(python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["jobs"][0]["read"]["bw_bytes"] / 1048576))' "$base.json")"
    stop_mount
    printf '%s\treads\t%s\t%s\t0\n' "$round" "$target" "$bw" >>"$RESULTS"
    printf '  round %s reads  %-16s %10s MiB/s\n' "$round" "$target" "$bw"
}

CREATE=(floor tierfs tierfs-8-threads)
READS=(native tierfs tierfs-8-threads)
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    for i in "${!CREATE[@]}"; do
        create "$round" "${CREATE[$(((i + round - 1) % ${#CREATE[@]}))]}"
    done
    for i in "${!READS[@]}"; do
        reads "$round" "${READS[$(((i + round - 1) % ${#READS[@]}))]}"
    done
done

TABLE="$(python3 - "$RESULTS" "$FILES" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines() if l]
files = int(sys.argv[2])
values, cpus = {}, {}
for _, phase, target, value, cpu in rows:
    values.setdefault((phase, target), []).append(float(value))
    cpus.setdefault((phase, target), []).append(float(cpu) * 1e6 / files)
med = statistics.median
print("| workload | target | median (range) | daemon CPU per create, µs | ratio |")
print("|---|---|---|---|---|")
for phase, what, ref, targets in [
    ("create", "%s x 4 KiB creates, per second" % files, "floor", ["floor", "tierfs", "tierfs-8-threads"]),
    ("reads", "4 jobs of random 64 KiB reads, cold 512 MiB file, MiB/s", "native", ["native", "tierfs", "tierfs-8-threads"]),
]:
    base = med(values[(phase, ref)])
    for target in targets:
        v, c = values[(phase, target)], cpus[(phase, target)]
        cpu = "%.0f (%.0f-%.0f)" % (med(c), min(c), max(c)) if phase == "create" else "-"
        print("| %s | %s | %.0f (%.0f-%.0f) | %s | %.2fx of %s |" % (
            what, target, med(v), min(v), max(v), cpu, med(v) / base, ref))
EOF
)"
echo
echo "$TABLE"
if [[ -n "$OUTPUT" ]]; then
    {
        echo "Run on $(date -u +%Y-%m-%d) ($(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)); reproduce with \`scripts/bench-threads.sh --rounds $ROUNDS --files $FILES\`."
        echo
        echo "$TABLE"
    } >"$OUTPUT"
fi
rm -rf "$BENCH_DIR"
