#!/usr/bin/env bash
# Node benchmarks: the npm package `tierfs` against `opendal` 0.47.7 (the
# version whose prebuilt module loads on Debian 12) and Node's `fs` streams,
# on the same backends: memory, and local files on the same disk.
#
#   scripts/bench-node.sh            full run (a few minutes)
#   scripts/bench-node.sh --quick    fewer operations and rounds
#
# It makes a project in a temporary directory outside the repository,
# installs tierfs from bindings-node/ (release build by its install script)
# and opendal from the registry, runs bindings-node/bench/bench.mjs there,
# and prints one line per measurement. Files are written under the project
# directory (TMPDIR), so every library uses the same disk. Results also go
# to target/tierfs-node-bench.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

PROJECT="$(mktemp -d "${TMPDIR:-/tmp}/tierfs-node-bench.XXXXXX")"
trap 'rm -rf "$PROJECT"' EXIT
cd "$PROJECT"
printf '{ "name": "tierfs-node-bench", "version": "1.0.0", "private": true }\n' >package.json
NPM_FLAGS=(--no-audit --no-fund --no-update-notifier)
npm install "${NPM_FLAGS[@]}" opendal@0.47.7 @opendal/lib-linux-x64-gnu@0.47.7 >/dev/null
npm install "${NPM_FLAGS[@]}" --foreground-scripts "$ROOT/bindings-node"
cp "$ROOT/bindings-node/bench/bench.mjs" .

mkdir -p "$ROOT/target"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); disk: $(df -h "$PROJECT" | awk 'NR == 2 { print $1 }')"
node bench.mjs --dir "$PROJECT" --json "$ROOT/target/tierfs-node-bench.json" "$@"
