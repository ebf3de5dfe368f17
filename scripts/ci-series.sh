#!/usr/bin/env bash
# Runs the CI command N times in a row (default 5), each on a fresh clone
# of this repository's HEAD, with CI=true and no stdin, while another cold
# workspace build runs beside it the whole time (a loaded 2-core machine).
# Stops at the first failure. Results: $OUT/summary (stage table per run)
# and $OUT/runN.log.
#
#   bash scripts/ci-series.sh [N]        # OUT defaults to /tmp/ci-series
#
# A run needs room (the suite writes a 4 GiB value, images and caches): the
# series stops before a run that would start with less than MIN_FREE_GIB
# (default 40) free where OUT lives, so a full disk is never taken for a
# failing test. The free space at each start is in the summary.
set -u
MIN_FREE_GIB=${MIN_FREE_GIB:-40}
N=${1:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/ci-series}
mkdir -p "$OUT" "$OUT/target"
rm -f "$OUT/done"

beside() {
    rm -rf "$OUT/beside-src" && git clone -q "$ROOT" "$OUT/beside-src"
    local n=0
    while [ ! -f "$OUT/done" ]; do
        (cd "$OUT/beside-src" && cargo clean -q --target-dir "$OUT/beside-target" &&
            cargo build -q --workspace --all-targets --target-dir "$OUT/beside-target") >"$OUT/beside.log" 2>&1
        n=$((n + 1))
        echo "$n" >"$OUT/beside.count"
    done
}
beside &
beside_pid=$!

rc=0
for i in $(seq 1 "$N"); do
    rm -rf "$OUT/clone"
    free_gib=$(($(df --output=avail -k "$OUT" | tail -1) / 1048576))
    if ((free_gib < MIN_FREE_GIB)); then
        echo "run $i not started: $free_gib GiB free in $OUT, under MIN_FREE_GIB=$MIN_FREE_GIB" >>"$OUT/summary"
        rc=2
        break
    fi
    git clone -q "$ROOT" "$OUT/clone"
    # Dependencies stay built between runs; the workspace's crates rebuild (new mtimes).
    ln -s "$OUT/target" "$OUT/clone/target"
    commit=$(git -C "$OUT/clone" rev-parse --short HEAD)
    start=$(date +%s)
    (cd "$OUT/clone" && CI=true setsid bash .ci/run </dev/null >"$OUT/run$i.log" 2>&1)
    rc=$?
    {
        echo "run $i on $commit: rc=$rc in $(($(date +%s) - start)) s; $free_gib GiB free at the start; cold builds beside so far: $(cat "$OUT/beside.count" 2>/dev/null || echo 0)"
        grep -A12 '^stage ' "$OUT/run$i.log" | tail -12
    } >>"$OUT/summary"
    [ "$rc" -eq 0 ] || break
done
touch "$OUT/done"
# The build beside ends after the one in progress.
wait "$beside_pid"
exit "$rc"
