#!/usr/bin/env bash
# Runs the tierfs-core criterion benchmarks (core/benches/) and prints one
# markdown report: the machine, every benchmark's mean (ns/op and ops/s),
# and the target ratios with PASS/FAIL.
#
#   scripts/bench-core.sh             run every benchmark (about 4 minutes after the build), then report
#   scripts/bench-core.sh REGEX       run only benchmarks whose id matches REGEX
#                                     (criterion's filter, e.g. `manager` or `engine/.*put`)
#   scripts/bench-core.sh --report    report the last run's results again, without running
#
# Targets are ratios against a reference measured in the same run, because
# this 2-core machine is shared and absolute figures move with its load:
#   tierfs local / raw redb, 4 KiB get and put     >= 0.90x ops/s
#   manager session / bare memory, 4 KiB get, put  >= 0.85x ops/s
#   prefer_cache / local alone, 90 % hits          >= 3x ops/s
#   sharded over 4 local / one local, 4 KiB get, put >= 0.90x ops/s
#   classed / unclassed get on one local backend, 4 KiB >= 0.95x ops/s
#   memory backend, 4 KiB get                      < 1000 ns
# Each ratio is read from an interleaved benchmark: both sides alternate in
# blocks, and the verdict uses the median over adjacent block pairs of the
# ops/s ratio, robust to a preempted block (core/benches/common/mod.rs). The
# pooled ratio (all time against all time) and the ratio of the two
# separately run benchmarks are printed beside it.
#
# A run's report is also written to target/criterion/tierfs-core-report.md.
# Results come from target/criterion/**/new/estimates.json (criterion's mean
# point estimate) and target/criterion/tierfs-pairs/*.json. Exits non-zero
# only if the benchmarks fail to build or run, not on a missed target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

target_dir="${CARGO_TARGET_DIR:-target}"
criterion_dir="${CRITERION_HOME:-$target_dir/criterion}"
report_file="$criterion_dir/tierfs-core-report.md"

run=1
filter=()
case "${1:-}" in
    --report) run=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *) filter=("$1") ;;
esac

benches=()
for file in core/benches/*.rs; do
    benches+=(--bench "$(basename "$file" .rs)")
done

# Results older than the last run (filtered out, or from a removed benchmark) are not reported.
mkdir -p "$criterion_dir"
run_start_file="$criterion_dir/tierfs-core-run-start"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
if ((run)); then
    date +%s >"$run_start_file"
    cargo bench -p tierfs-core "${benches[@]}" -- "${filter[@]}"
fi
since="$(cat "$run_start_file" 2>/dev/null || echo 0)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

machine_cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
machine_disk="$(df -h "$PWD" 2>/dev/null | awk 'NR == 2 {print $1 ", " $2 " (" $5 " used)"}')"

machine="$(nproc) cores, ${machine_cpu:-unknown CPU}, kernel $(uname -r), disk ${machine_disk:-unknown}"
if ((run)); then
    machine+="; load average $load_before before, $load_after after"
else
    machine+="; load average $load_after now (reported again, not measured now)"
fi

# A fresh run's report is also kept in $report_file; --report only prints.
out="/dev/null"
((run)) && out="$report_file"
python3 - "$criterion_dir" "$since" "$machine" <<'PY' | tee "$out"
import json, os, sys
from pathlib import Path

root, since = Path(sys.argv[1]), float(sys.argv[2])
print(f"Machine: {sys.argv[3]}.")
print()

def fresh(path):
    return path.stat().st_mtime >= since

# Every benchmark criterion measured: id -> mean ns, CI, when.
results = {}
for est in root.glob("**/new/estimates.json"):
    if not fresh(est):
        continue
    bench = json.loads((est.parent / "benchmark.json").read_text())
    mean = json.loads(est.read_text())["mean"]
    ci = mean["confidence_interval"]
    results[bench["full_id"]] = (mean["point_estimate"], ci["lower_bound"], ci["upper_bound"], est.stat().st_mtime)

pairs = {}
for path in sorted((root / "tierfs-pairs").glob("*.json")):
    if fresh(path):
        pairs[path.stem] = json.loads(path.read_text())

def ns(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"

def ops(x):
    per_s = 1e9 / x
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:,.2f}"

if not results:
    print("No fresh results: run without --report, or check the filter.")
    sys.exit(0)

print("| benchmark | mean ns/op | 95% CI of the mean (ns) | ops/s |")
print("|---|---:|---:|---:|")
for bench_id, (mean, lo, hi, _) in sorted(results.items(), key=lambda kv: kv[1][3]):
    if bench_id.endswith("/interleaved"):
        continue  # one reference plus one target operation; shown below as a ratio
    print(f"| {bench_id} | {ns(mean)} | {ns(lo)} – {ns(hi)} | {ops(mean)} |")
print()
if any("list_100k" in bench_id for bench_id in results):
    print("`list_100k`: one op is one full recursive listing of 100,000 keys (keys/s = ops/s x 100,000).")
    print()

# (label, pair file, reference id, target id, minimum ops/s ratio target / reference)
RATIOS = [
    ("local/raw get 4 KiB", "local_vs_raw_get_4KiB", "engine/raw_redb/get/4KiB", "engine/tierfs_local/get/4KiB", 0.90),
    ("local/raw put 4 KiB", "local_vs_raw_put_4KiB", "engine/raw_redb/put/4KiB", "engine/tierfs_local/put/4KiB", 0.90),
    ("manager/bare get 4 KiB", "session_vs_bare_get_4KiB", "manager/bare_memory/get/4KiB", "manager/session/get/4KiB", 0.85),
    ("manager/bare put 4 KiB", "session_vs_bare_put_4KiB", "manager/bare_memory/put/4KiB", "manager/session/put/4KiB", 0.85),
    ("prefer_cache/local, 90 % hits, 2,000 cold keys", "prefer_cache_vs_local_cold_2k", "prefer_cache_90pct_hits_cold_2k/local_alone", "prefer_cache_90pct_hits_cold_2k/prefer_cache", 3.0),
    ("prefer_cache/local, 90 % hits, 20,000 cold keys", "prefer_cache_vs_local_cold_20k", "prefer_cache_90pct_hits_cold_20k/local_alone", "prefer_cache_90pct_hits_cold_20k/prefer_cache", 3.0),
    ("sharded over 4 local/one local get 4 KiB", "sharded_vs_local_get_4KiB", "sharded/one_local/get/4KiB", "sharded/four_members/get/4KiB", 0.90),
    ("sharded over 4 local/one local put 4 KiB", "sharded_vs_local_put_4KiB", "sharded/one_local/put/4KiB", "sharded/four_members/put/4KiB", 0.90),
    ("classed/unclassed get 4 KiB (class lookup)", "classed_vs_unclassed_get_4KiB", "classes/unclassed/get/4KiB", "classes/classed/get/4KiB", 0.95),
]
rows = []
for label, pair, ref_id, target_id, goal in RATIOS:
    separate = results[ref_id][0] / results[target_id][0] if ref_id in results and target_id in results else None
    p = pairs.get(pair)
    ratio = p["ratio"] if p else separate
    if ratio is None:
        continue
    verdict = "PASS" if ratio >= goal else "FAIL"
    inter = f"{p['ratio']:.3f}x" if p else "–"
    spread = f"{p['ratio_p25']:.3f} – {p['ratio_p75']:.3f}" if p else "–"
    sides = f"{ns(p['reference_ns_per_op'])} → {ns(p['target_ns_per_op'])}" if p else "–"
    pooled = f"{p['pooled_ratio']:.3f}x" if p else "–"
    sep = f"{separate:.3f}x" if separate is not None else "–"
    rows.append(f"| {label} | ≥ {goal:.2f}x | {inter} | {spread} | {sides} | {pooled} | {sep} | {verdict} |")
mem = results.get("memory/get/4KiB")
if mem:
    verdict = "PASS" if mem[0] < 1000 else "FAIL"
    rows.append(f"| memory get 4 KiB | < 1,000 ns | – | – | {ns(mem[0])} ns/op | – | – | {verdict} |")
known = {r[1] for r in RATIOS}
others = [(name, p) for name, p in pairs.items() if name not in known]
if rows:
    print("| target | goal | interleaved ratio (median) | block-pair ratio p25 – p75 | ns/op reference → target (median block) | pooled ratio | separate-run ratio | result |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
if others:
    print()
    print("Other interleaved pairs (ops/s ratio target / reference, median over block pairs; in `layer_*`")
    print("the reference is the stack one layer down, so the difference is that layer's cost):")
    print()
    print("| pair | reference ns/op | target ns/op | difference ns/op | ratio | block-pair p25 – p75 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p in others:
        r, t = p["reference_ns_per_op"], p["target_ns_per_op"]
        print(f"| {name} | {ns(r)} | {ns(t)} | {t - r:+,.0f} | {p['ratio']:.3f}x | {p['ratio_p25']:.3f} – {p['ratio_p75']:.3f} |")
PY
if ((run)); then
    echo "(report written to $report_file)"
fi
