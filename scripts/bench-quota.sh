#!/usr/bin/env bash
# What a quota costs in a mount: small files (scripts/fuse-smallfiles.py,
# create+write+close, stat, read, unlink) in a directory a `[[quotas]]`
# entry counts (written at close, not group-committed, so a passed quota
# is EDQUOT at that call) against the same files in a directory no quota
# counts, in one mount of the local backend, rounds alternating which goes
# first. Prints each round's ops/s and the median ratio per phase.
#
#   scripts/bench-quota.sh [--files N] [--rounds N]
#
# Needs root (mounts). Everything lives under BENCH_DIR (default
# /var/tmp/tierfs-bench-quota), removed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/mounts.sh
. "$ROOT/scripts/lib/mounts.sh"
FILES=2000
ROUNDS=3
while (($# > 0)); do
    case "$1" in
        --files) FILES="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
((EUID == 0)) || { echo "bench-quota.sh mounts: run it as root" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
cd "$ROOT"
cargo build -q -p tierfs-fuse --release --bin tierfs
TIERFS="$ROOT/target/release/tierfs"

BENCH_DIR="${BENCH_DIR:-/var/tmp/tierfs-bench-quota}"
rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR/mnt"
MNT="" DAEMON_PID=""
trap 'stop_mount; rm -rf "$BENCH_DIR"' EXIT
cat >"$BENCH_DIR/tierfs.toml" <<TOML
[backends.disk]
type = "local"
path = "$BENCH_DIR/store"

[[quotas]]
prefix = "quota/"
max_bytes = 1099511627776
max_keys = 100000000
TOML
"$TIERFS" mount --config "$BENCH_DIR/tierfs.toml" "$BENCH_DIR/mnt" 2>"$BENCH_DIR/daemon.log" &
DAEMON_PID=$!
MNT="$BENCH_DIR/mnt"
wait_mounted "$MNT"

results="$BENCH_DIR/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
    order=(plain quota)
    ((round % 2 == 0)) && order=(quota plain)
    for dir in "${order[@]}"; do
        json="$(python3 "$ROOT/scripts/fuse-smallfiles.py" "$MNT/$dir/r$round" --files "$FILES" --size 4096)"
        echo "$round $dir $json" | tee -a "$results"
    done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [l.split(" ", 2) for l in open(sys.argv[1]) if l.strip()]
by = {}
for rnd, d, js in rows:
    by.setdefault(rnd, {})[d] = json.loads(js)
print("| phase | plain ops/s (median) | quota ops/s (median) | ratio (median of rounds) |")
print("|---|---|---|---|")
for phase in ["create", "stat", "read", "unlink"]:
    plain = [r["plain"][phase] for r in by.values()]
    quota = [r["quota"][phase] for r in by.values()]
    ratio = statistics.median(q / p for q, p in zip(quota, plain))
    print(f"| {phase} | {statistics.median(plain):,.0f} | {statistics.median(quota):,.0f} | {ratio:.2f}x |")
PY
