#!/usr/bin/env bash
# Regenerates native.d.ts, the declarations of the native layer, with the
# napi-rs CLI (installed into a temporary directory, not a dependency of
# the package). index.d.ts, the public API, is written by hand over it.
#
#   bindings-node/scripts/gen-types.sh           rewrite native.d.ts
#   bindings-node/scripts/gen-types.sh --check   fail if native.d.ts is stale
set -euo pipefail
PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
TOOLS="$(mktemp -d "${TMPDIR:-/tmp}/tierfs-napi-cli.XXXXXX")"
trap 'rm -rf "$TOOLS"' EXIT

npm install --prefix "$TOOLS" --no-audit --no-fund --no-update-notifier @napi-rs/cli@3 >/dev/null
"$TOOLS/node_modules/.bin/napi" build --cwd "$PKG" --manifest-path Cargo.toml --package-json-path package.json \
    --output-dir "$TOOLS/out" --platform --no-js --dts native.d.ts >&2

if [[ "${1:-}" == --check ]]; then
    if ! diff -u "$PKG/native.d.ts" "$TOOLS/out/native.d.ts"; then
        echo "native.d.ts is stale: run bindings-node/scripts/gen-types.sh" >&2
        exit 1
    fi
    echo "native.d.ts is up to date"
else
    cp "$TOOLS/out/native.d.ts" "$PKG/native.d.ts"
    echo "wrote $PKG/native.d.ts"
fi
