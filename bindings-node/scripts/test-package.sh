#!/usr/bin/env bash
# Tests the npm package the way users install it: a fresh project in a
# temporary directory outside the repository runs
# `npm install /path/to/tierfs/bindings-node` (the install script builds the
# native module with cargo), then node's test runner runs bindings-node/tests/
# there against `require('tierfs')` / `import 'tierfs'`, including
# `tsc --noEmit` of an example script.
#
#   bindings-node/scripts/test-package.sh [node --test args...]
#
# Environment:
#   TIERFS_NODE_KEEP=1   keep the temporary project (it is kept anyway on failure)
set -euo pipefail

PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT="$(mktemp -d "${TMPDIR:-/tmp}/tierfs-node-test.XXXXXX")"
case "$PROJECT" in
    "$(dirname "$PKG")"/*) echo "the test project must be outside the repository: $PROJECT" >&2; exit 2 ;;
esac

step() { printf '+ %s\n' "$*"; "$@"; }

cd "$PROJECT"
cat >package.json <<'EOF'
{
  "name": "tierfs-package-tests",
  "version": "1.0.0",
  "private": true,
  "description": "A user's project: installs tierfs from its folder and runs its tests"
}
EOF

NPM_FLAGS=(--no-audit --no-fund --no-update-notifier --foreground-scripts)
# Test tools first, from the registry.
step npm install "${NPM_FLAGS[@]}" typescript@5.9 @types/node@20
# Then the package, as users install it: by path, from another directory.
step npm install "${NPM_FLAGS[@]}" "$PKG"

node -e "const t = require('tierfs'); if (typeof t.open !== 'function') process.exit(1)" || {
    echo "require('tierfs') failed in $PROJECT" >&2
    exit 1
}
cp -r "$PKG/tests" "$PROJECT/tests"

rc=0
step node --test --test-reporter=spec "$@" tests/ || rc=$?
if ((rc != 0)); then
    echo "node tests failed (exit $rc); the project is kept in $PROJECT" >&2
elif [[ "${TIERFS_NODE_KEEP:-}" == 1 ]]; then
    echo "project kept in $PROJECT"
else
    rm -rf "$PROJECT"
fi
exit "$rc"
