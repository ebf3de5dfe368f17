#!/usr/bin/env bash
# Distributed benchmarks: TierFS on a three-node Garage cluster, in one run.
#
#   scripts/bench-distributed.sh [--output FILE] [--seq-mib N] [--keys N] [--rounds N] [--no-core]
#
# 1. Core API (criterion, core/benches/distributed.rs): the `s3` backend against
#    the same requests made with the `object_store` crate directly, 4 KiB and
#    4 MiB puts and gets, one at a time and eight at once; `prefer_cache` (LRU)
#    against the cluster alone on reads of a 100 MiB working set.
# 2. Mounts of one bucket: `tierfs mount` (an `s3` backend), `rclone mount` and
#    `s3fs`, each with its default settings:
#      seq-write   SEQ_MIB of random data with dd bs=1M conv=fsync (the upload has
#                  finished when dd exits)
#      seq-read    the same file with dd bs=1M, after a remount and drop_caches
#      list        `ls -f` of a directory of KEYS keys (created once with a parallel
#                  upload), first after a fresh mount (cold) and again (warm)
#    and the daemon's CPU seconds (utime+stime) over each workload. Garage on
#    two cores swings by 20 % from one run to the next, so the three tools
#    take ROUNDS turns (default 3), in a rotated order each round; the table
#    gives each tool's median and the range of the per-round ratios.
# 3. `tierfs mount` with `prefer_cache` (LRU of 512 MiB) against the bare `s3`
#    mount: 100 files of 1 MiB read whole with `cat`, pass after pass, the
#    kernel's page cache dropped before each pass; the first pass fills the
#    cache and is not counted.
#
# Needs root (mounts, drop_caches). Starts its own Garage cluster
# (GARAGE_PORT_BASE, default 41000) and redis-server under BENCH_DIR (default
# /var/tmp/tierfs-bench-dist), stops them and removes BENCH_DIR at the end.
# Installs s3fs, rclone and fuse3 if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
OUTPUT=""
SEQ_MIB=1024
KEYS=10000
CORE=1
PASSES=3
ROUNDS=3
while (($# > 0)); do
    case "$1" in
        --output) OUTPUT="$2"; shift 2 ;;
        --seq-mib) SEQ_MIB="$2"; shift 2 ;;
        --keys) KEYS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-core) CORE=0; shift ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if ((EUID != 0)); then
    echo "bench-distributed.sh mounts and drops caches: run it as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive PATH="$HOME/.cargo/bin:$PATH"
# Plain HTTP to loopback: CA variables of this environment only get in the way.
unset AWS_CA_BUNDLE SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE || true
export GARAGE_PORT_BASE="${GARAGE_PORT_BASE:-41000}"
missing=()
for pkg in s3fs rclone fuse3 redis-server python3; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
command -v garage >/dev/null || cargo install --locked garage@2.5.0

cd "$ROOT"
cargo build -q -p tierfs-fuse --release
TIERFS="$ROOT/target/release/tierfs"

BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench-dist}"
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
    bash "$ROOT/scripts/services/redis.sh" stop "$BENCH_DIR/redis" || true
    rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

bash scripts/services/garage.sh start "$BENCH_DIR/garage"
bash scripts/services/redis.sh start "$BENCH_DIR/redis"
set -a
# shellcheck disable=SC1091
. "$BENCH_DIR/garage/env"
# shellcheck disable=SC1091
. "$BENCH_DIR/redis/env"
set +a

# ---- 1. core API --------------------------------------------------------------

PAIRS="${CARGO_TARGET_DIR:-$ROOT/target}/criterion/tierfs-pairs"
if ((CORE)); then
    rm -f "$PAIRS"/s3_*.json "$PAIRS"/prefer_cache_*.json
    cargo bench -q -p tierfs-core --bench distributed
fi

# ---- 2. and 3. mounts ---------------------------------------------------------

cluster_configs "$BENCH_DIR"
sed '/^\[policy\]/,$d' "$BENCH_DIR/tierfs-s3.toml" >"$BENCH_DIR/tierfs-cache.toml"
cat >>"$BENCH_DIR/tierfs-cache.toml" <<TOML
[policy]
type = "prefer_cache"
primary = "cluster"
cache = { capacity_mib = 512 }
TOML
cat >"$BENCH_DIR/rclone.conf" <<CONF
[garage]
type = s3
provider = Other
access_key_id = $TIERFS_S3_ACCESS_KEY_ID
secret_access_key = $TIERFS_S3_SECRET_ACCESS_KEY
endpoint = $TIERFS_S3_ENDPOINT
region = $TIERFS_S3_REGION
force_path_style = true
CONF
RCLONE=(rclone --config "$BENCH_DIR/rclone.conf")

# mount_target TARGET: mounts the bucket with TARGET at $BENCH_DIR/TARGET/mnt.
mount_target() {
    local target="$1" dir="$BENCH_DIR/$1"
    MNT="$dir/mnt"
    mkdir -p "$MNT" "$dir/spool"
    case "$target" in
        tierfs) "$TIERFS" mount --config "$BENCH_DIR/tierfs-s3.toml" --spool-dir "$dir/spool" "$MNT" \
            >>"$dir/log" 2>&1 & ;;
        tierfs-cache) "$TIERFS" mount --config "$BENCH_DIR/tierfs-cache.toml" --spool-dir "$dir/spool" "$MNT" \
            >>"$dir/log" 2>&1 & ;;
        rclone) "${RCLONE[@]}" mount "garage:$TIERFS_S3_BUCKET" "$MNT" >>"$dir/log" 2>&1 & ;;
        s3fs) s3fs "$TIERFS_S3_BUCKET" "$MNT" -f -o "passwd_file=$BENCH_DIR/s3fs.passwd" \
            -o use_path_request_style -o "url=http://127.0.0.1:$S3_PORT" -o "endpoint=$TIERFS_S3_REGION" \
            >>"$dir/log" 2>&1 & ;;
    esac
    DAEMON_PID=$!
    wait_mounted "$MNT"
}

unmount_target() {
    case "$MNT" in
        */tierfs/mnt | */tierfs-cache/mnt) "$TIERFS" unmount "$MNT" ;;
        *) fusermount3 -u "$MNT" || umount "$MNT" ;;
    esac
    wait "$DAEMON_PID" || true
    DAEMON_PID=""
    MNT=""
}

# timed VAR CMD...: runs CMD, sets VAR to its wall seconds and CPU_USED to the daemon's CPU seconds.
CPU_USED=0
secs=0
timed() {
    local var="$1" cpu0 t0 t1
    shift
    cpu0="$(cpu_seconds "$DAEMON_PID")"
    t0="$(date +%s.%N)"
    "$@"
    t1="$(date +%s.%N)"
    CPU_USED="$(awk -v a="$cpu0" -v b="$(cpu_seconds "$DAEMON_PID")" 'BEGIN { printf "%.2f", b - a }')"
    printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }

count_listing() {
    local n
    # shellcheck disable=SC2012 # ls -f is the workload: names only, no stat
    n="$(ls -f "$MNT/list" | wc -l)"
    ((n == KEYS + 2)) || { echo "listed $n entries in $MNT/list, expected $((KEYS + 2))" >&2; return 1; }
}

# The listed directory and the working set: KEYS tiny files and 100 x 1 MiB, uploaded once.
echo "== creating $KEYS keys and a 100 MiB working set with a parallel upload"
mkdir -p "$BENCH_DIR/seed/list" "$BENCH_DIR/seed/ws"
python3 - "$BENCH_DIR/seed" "$KEYS" <<'EOF'
import os, sys
root, keys = sys.argv[1], int(sys.argv[2])
for i in range(keys):
    with open(os.path.join(root, "list", "k%06d" % i), "w") as f:
        f.write("key %d\n" % i)
for i in range(100):
    with open(os.path.join(root, "ws", "f%03d" % i), "wb") as f:
        f.write(os.urandom(1 << 20))
EOF
t0="$(date +%s.%N)"
"${RCLONE[@]}" copy "$BENCH_DIR/seed" "garage:$TIERFS_S3_BUCKET" --transfers 32 --checkers 32 \
    --no-check-dest --s3-no-check-bucket
echo "  uploaded in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
rm -rf "$BENCH_DIR/seed"
head -c "${SEQ_MIB}M" /dev/urandom >"$BENCH_DIR/src.bin"

# record_round ROUND TARGET WORKLOAD VALUE UNIT CPU
record_round() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    printf '  round %s %-8s %-12s %10s %-6s cpu %6ss\n' "$@"
}

TARGETS=(tierfs rclone s3fs)
for round in $(seq 1 "$ROUNDS"); do
    for i in 0 1 2; do
        target="${TARGETS[$(((i + round - 1) % 3))]}"
        echo "== round $round: $target"
        cat "$BENCH_DIR/src.bin" >/dev/null # the source in the page cache
        mount_target "$target"
        mkdir -p "$MNT/run-$target"
        timed secs dd if="$BENCH_DIR/src.bin" of="$MNT/run-$target/seq.bin" bs=1M conv=fsync status=none
        record_round "$round" "$target" seq-write "$(rate "$SEQ_MIB" "$secs")" MiB/s "$CPU_USED"
        unmount_target

        mount_target "$target"
        drop_caches
        timed secs dd if="$MNT/run-$target/seq.bin" of=/dev/null bs=1M status=none
        size="$(stat -c %s "$MNT/run-$target/seq.bin")"
        ((size == SEQ_MIB << 20)) || { echo "$target: seq.bin has $size bytes" >&2; exit 1; }
        record_round "$round" "$target" seq-read "$(rate "$SEQ_MIB" "$secs")" MiB/s "$CPU_USED"
        timed secs count_listing
        record_round "$round" "$target" list-cold "$(rate "$KEYS" "$secs")" keys/s "$CPU_USED"
        timed secs count_listing
        record_round "$round" "$target" list-warm "$(rate "$KEYS" "$secs")" keys/s "$CPU_USED"
        rm -f "$MNT/run-$target/seq.bin"
        unmount_target
    done
done

# Repeated reads of the 100 MiB working set, bare and with prefer_cache.
read_ws() { cat "$MNT"/ws/f* >/dev/null; }
for target in tierfs tierfs-cache; do
    echo "== $target: repeated reads of 100 MiB"
    mount_target "$target"
    drop_caches
    read_ws # the first pass: a cold read, and the fill of the cache
    total=0
    cpu=0
    for _ in $(seq 1 "$PASSES"); do
        drop_caches
        timed secs read_ws
        total="$(awk -v a="$total" -v b="$secs" 'BEGIN { print a + b }')"
        cpu="$(awk -v a="$cpu" -v b="$CPU_USED" 'BEGIN { print a + b }')"
    done
    record_round 1 "$target" ws-reread "$(rate $((100 * PASSES)) "$total")" MiB/s "$cpu"
    unmount_target
done

# ---- the tables -------------------------------------------------------------------

TABLE="$(python3 - "$RESULTS" "$PAIRS" "$SEQ_MIB" "$KEYS" <<'EOF'
import glob, json, os, sys
results, pairs_dir, seq_mib, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

pairs = {}
for path in glob.glob(os.path.join(pairs_dir, "*.json")):
    p = json.load(open(path))
    if p["pair"].startswith(("s3_", "prefer_cache_")):
        pairs[p["pair"]] = p
if pairs:
    print("Core API (interleaved pairs; reference `object_store` 0.14 directly, target `S3Storage`):")
    print()
    print("| operation | object_store | S3Storage | S3Storage / object_store (median of paired blocks, p25 to p75) |")
    print("|---|---|---|---|")
    def size_of(name):
        return 4 / 1024 if "4KiB" in name else 4 if "4MiB" in name else 1
    for name in sorted(pairs):
        if not name.startswith("s3_"):
            continue
        p = pairs[name]
        width = 8 if name.endswith("_x8") else 1
        mib = size_of(name)
        def fmt(ns):
            ops = width * 1e9 / ns
            return "%.0f ops/s (%.1f MiB/s)" % (ops, ops * mib)
        print("| %s | %s | %s | %.2fx (%.2fx to %.2fx) |" % (
            name[3:].replace("_x8", ", 8 at once").replace("_", " "), fmt(p["reference_ns_per_op"]),
            fmt(p["target_ns_per_op"]), p["ratio"], p["ratio_p25"], p["ratio_p75"]))
    for name in sorted(pairs):
        if name.startswith("prefer_cache_"):
            p = pairs[name]
            f = lambda ns: "%.0f MiB/s" % (1e9 / ns)
            print()
            print("| 1 MiB gets over a 100 MiB working set | cluster alone | prefer_cache (LRU) | prefer_cache / alone |")
            print("|---|---|---|---|")
            print("| manager session | %s | %s | %.1fx (%.1fx to %.1fx) |" % (
                f(p["reference_ns_per_op"]), f(p["target_ns_per_op"]), p["ratio"], p["ratio_p25"], p["ratio_p75"]))
    print()

from statistics import median
runs = {}
for line in open(results):
    rnd, target, workload, value, unit, cpu = line.rstrip("\n").split("\t")
    runs.setdefault((target, workload), []).append((int(rnd), float(value), unit, float(cpu)))
# Each tool's median over the rounds (value and daemon CPU).
data = {k: (median(v[1] for v in vs), vs[0][2], "%.2f" % median(v[3] for v in vs)) for k, vs in runs.items()}
def ratios(a, b, w):
    """tierfs / other for each round, paired by round."""
    other = {r: v for r, v, _, _ in runs[(b, w)]}
    return sorted(v / other[r] for r, v, _, _ in runs[(a, w)] if r in other)
names = {
    "seq-write": "sequential write %s MiB, dd bs=1M conv=fsync" % seq_mib,
    "seq-read": "sequential read, after remount and drop_caches",
    "list-cold": "`ls -f` of %s keys, first after mount" % keys,
    "list-warm": "`ls -f` of %s keys, again" % keys,
}
rounds = max(r for vs in runs.values() for r, _, _, _ in vs)
print("Mounts of one bucket, median of %d rounds (daemon CPU seconds in brackets); the ratios are" % rounds)
print("of the medians, with the lowest and highest per-round ratio after them:")
print()
print("| workload | tierfs | rclone | s3fs | tierfs / rclone | tierfs / s3fs |")
print("|---|---|---|---|---|---|")
for w in ["seq-write", "seq-read", "list-cold", "list-warm"]:
    t, r, s = data[("tierfs", w)], data[("rclone", w)], data[("s3fs", w)]
    f = lambda v: "%.0f %s (%s)" % (v[0], v[1], v[2])
    g = lambda m, rs: "%.2fx (%.2f to %.2f)" % (m, rs[0], rs[-1])
    print("| %s | %s | %s | %s | %s | %s |" % (names[w], f(t), f(r), f(s),
        g(t[0] / r[0], ratios("tierfs", "rclone", w)), g(t[0] / s[0], ratios("tierfs", "s3fs", w))))
print()
b, c = data[("tierfs", "ws-reread")], data[("tierfs-cache", "ws-reread")]
print("| repeated read of 100 x 1 MiB, page cache dropped | tierfs (s3) | tierfs (prefer_cache, LRU) | cached / bare |")
print("|---|---|---|---|")
print("| `cat` of every file, passes after the first | %.0f MiB/s (%s) | %.0f MiB/s (%s) | %.1fx |" % (
    b[0], b[2], c[0], c[2], c[0] / b[0]))
EOF
)"
echo
echo "$TABLE"
if [[ -n "$OUTPUT" ]]; then
    {
        echo "Run on $(date -u +%Y-%m-%d) ($(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)); reproduce with \`scripts/bench-distributed.sh\`."
        echo
        echo "$TABLE"
    } >"$OUTPUT"
    echo "table written to $OUTPUT"
fi
