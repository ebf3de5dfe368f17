#!/usr/bin/env bash
# Benchmarks the Python package against opendal (PyPI 0.47.12) and plain
# Python file I/O, and prints a Markdown report (docs/benchmarks.md, section
# "Python", holds the last recorded run).
#
#   scripts/bench-python.sh                 build, install and run (a few minutes)
#   scripts/bench-python.sh --dir DIR       put the scratch files in DIR (the disk to measure)
#   scripts/bench-python.sh -- ARGS...      pass ARGS to bindings-python/benches/bench.py
#                                           (--ops, --local-ops, --big-mib, --repeat)
#
# It makes a virtual environment in target/bench-python-venv, installs
# ./bindings-python (release build through maturin) and opendal 0.47.12 with
# pip, then runs bindings-python/benches/bench.py. The report also goes to
# target/bench-python-report.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

args=()
while (($# > 0)); do
    case "$1" in
        --dir) args+=(--dir "$2"); shift 2 ;;
        --) shift; args+=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

venv="target/bench-python-venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "opendal==0.47.12"
"$venv/bin/pip" install -q --force-reinstall --no-deps ./bindings-python
report="target/bench-python-report.md"
"$venv/bin/python" bindings-python/benches/bench.py "${args[@]}" | tee "$report"
echo
echo "report: $report"
