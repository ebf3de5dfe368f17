#!/usr/bin/env bash
# The one test command of TierFS: every check CI runs, in stages.
#
#   scripts/test.sh                 run every stage, in order
#   scripts/test.sh lint rust       run only the named stages (still in the order below)
#   scripts/test.sh --list          list the stages
#
# CI runs it through `.ci/run` as root on a clean clone with CI=true and no stdin.
# It installs what it needs itself, and only what is missing, so a warm machine
# skips apt and cargo install entirely.
#
# Environment:
#   FUZZ_SECONDS     seconds of fuzzing per fuzz target (default 30)
#   FUZZ_SANITIZER   cargo-fuzz sanitizer: none (default) or address
#   FUZZ_TARGETS     space-separated fuzz targets (default: all of `cargo fuzz list`)
#   FSX_OPS          fsx operations in the fuse stage (default 100000)
#   FSX_SEED         fsx seed (default: random, printed so a failure can be repeated)
#
# It continues past a failed stage so that one run reports every stage, exits
# non-zero if any stage failed, and ends with a summary and a plain
# `N passed, N failed` line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---------------------------------------------------------------------------
# STAGES, in run order. To add a stage, write a function `stage_NAME` below
# and add NAME here; nothing else changes.
STAGES=(setup lint rust services fuse fuzz python node)
# ---------------------------------------------------------------------------

export PATH="$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive
FMT_COLOR=auto
if [[ "${CI:-}" == "true" ]]; then
    # A clean clone builds once: incremental caches would only take disk
    # (gigabytes) that the large-file tests need.
    export CARGO_INCREMENTAL=0
    export CARGO_TERM_COLOR=never
    FMT_COLOR=never # rustfmt's diff does not follow CARGO_TERM_COLOR
fi

# ---- helpers ---------------------------------------------------------------

log() { printf '%s\n' "$*"; }

# Echo a command, then run it; say which one failed.
run() {
    printf '+ %s\n' "$*"
    local rc=0
    "$@" || rc=$?
    if ((rc != 0)); then
        printf '!! exit %d: %s\n' "$rc" "$*" >&2
    fi
    return "$rc"
}

APT_UPDATED=0

# apt_need PKG...: install the Debian packages that are not installed yet.
apt_need() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    if ((APT_UPDATED == 0)); then
        run apt-get update -q </dev/null
        APT_UPDATED=1
    fi
    run apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# cmd_need CMD PKG: install PKG when command CMD is missing.
cmd_need() {
    command -v "$1" >/dev/null 2>&1 || apt_need "$2"
}

# rust_components_need: rustfmt and clippy for the active toolchain.
rust_components_need() {
    local want=()
    cargo fmt --version >/dev/null 2>&1 || want+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || want+=(clippy)
    if ((${#want[@]} > 0)); then
        run rustup component add "${want[@]}"
    fi
}

# cargo_tool_need CRATE [BIN]: `cargo install --locked CRATE` unless BIN
# (default: CRATE) is already in ~/.cargo/bin.
cargo_tool_need() {
    local crate="$1" bin="${2:-$1}"
    if [[ ! -x "$HOME/.cargo/bin/$bin" ]]; then
        run cargo install --locked "$crate"
    fi
}

# ---- stages ----------------------------------------------------------------

# setup: what every Rust stage needs (C toolchain for -sys crates and
# libFuzzer, rustfmt, clippy). Later stages install their own extras too, so
# that each still works when run alone.
stage_setup() {
    cmd_need cc gcc
    cmd_need c++ g++
    cmd_need make make
    cmd_need pkg-config pkg-config
    cmd_need git git
    rust_components_need
    run cargo --version
    run rustc --version
    # The builds take about 15 GiB and the fuse stage moves a 4 GiB file
    # through the store, its spool and a copy: say early if space is short.
    run df -h "$ROOT" "${TMPDIR:-/tmp}"
    local avail
    avail=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 { print int($4 / 1048576) }')
    if ((avail < 30)); then
        log "warning: ${avail} GiB free under ${TMPDIR:-/tmp}; the suite needs about 30 GiB"
    fi
}

stage_lint() {
    rust_components_need
    local failed=()
    run cargo fmt --all -- --check --color "$FMT_COLOR" || failed+=(fmt)
    run cargo fmt --manifest-path fuzz/Cargo.toml -- --check --color "$FMT_COLOR" || failed+=(fmt-fuzz)
    run cargo clippy --workspace --all-targets --all-features -- -D warnings || failed+=(clippy)
    RUSTDOCFLAGS="-D warnings" run cargo doc --workspace --no-deps || failed+=(doc)
    # tierfs-core without its optional features (s3, redis, plugins) builds
    # clean, and a configuration that needs one names it.
    run cargo clippy -p tierfs-core --no-default-features --all-targets -- -D warnings || failed+=(clippy-no-default)
    run cargo test -p tierfs-core --no-default-features --lib registry::without_features || failed+=(no-default)
    if ((${#failed[@]} > 0)); then
        log "lint failed: ${failed[*]}"
        return 1
    fi
}

stage_rust() {
    # The workspace's tests include the mount's, which use these tools and
    # fail without them under CI=true; the power loss test mounts ext4
    # images on loop devices (losetup, mkfs.ext4); the storage class tests
    # run setfattr and getfattr (attr).
    apt_need fuse3 rsync sqlite3 git e2fsprogs mount attr
    if cargo nextest --version >/dev/null 2>&1; then
        run cargo nextest run --workspace
        # nextest does not run doctests.
        run cargo test --doc --workspace
    else
        run cargo test --workspace
    fi
}

# services: TierFS on real distributed components. A three-node Garage
# cluster on 127.0.0.1 (replication factor 3; `cargo install garage` once per
# machine, about 15 minutes on 2 cores, then reused from ~/.cargo/bin), a
# redis-server and a three-primary Redis Cluster on free ports, all started
# here and stopped at the end.
# The behaviour suite runs against the cluster bare and behind both caches,
# then `tierfs mount` serves the cluster for real (root and /dev/fuse): bare,
# and behind the LRU and Redis caches (fuse-mount/tests/distributed.rs), the
# tool tests on the cluster (fuse-mount/tests/tools.rs), then
# the fault tests stop nodes and Redis under load, one at a time, through
# the core and through the mount (fuse-mount/tests/distributed_faults.rs).
# Last, conformance per backend: pjdfstest and fsx against a mount over the
# cluster and over a prefer_cache stack (see conformance below).
stage_services() {
    apt_need redis-server redis-tools fuse3 diffutils rsync sqlite3 git
    cargo_tool_need garage@2.5.0 garage
    cargo_tool_need pjdfstest
    cargo_tool_need fsx
    local dir
    dir="$(mktemp -d /tmp/tierfs-services.XXXXXX)"
    # shellcheck disable=SC2064 # expand now: stop exactly these services
    trap "bash '$ROOT/scripts/services/garage.sh' stop '$dir/garage'; bash '$ROOT/scripts/services/redis.sh' stop '$dir/redis'; bash '$ROOT/scripts/services/redis-cluster.sh' stop '$dir/redis-cluster'; rm -rf '$dir'" EXIT
    run bash "$ROOT/scripts/services/garage.sh" start "$dir/garage"
    run bash "$ROOT/scripts/services/redis.sh" start "$dir/redis"
    run bash "$ROOT/scripts/services/redis-cluster.sh" start "$dir/redis-cluster"
    set -a
    # shellcheck disable=SC1091
    . "$dir/garage/env"
    # shellcheck disable=SC1091
    . "$dir/redis/env"
    # shellcheck disable=SC1091
    . "$dir/redis-cluster/env"
    set +a
    if ((EUID != 0)) || [[ ! -e /dev/fuse ]]; then
        log "the mount tests of the services stage mount for real: they need root and /dev/fuse"
        return 1
    fi
    run cargo test -p tierfs-tests --features services --test distributed
    # The mount tests check what the bucket holds, so they run while the
    # cluster is whole; the fault tests after them stop and restart nodes,
    # which then resynchronise in the background.
    run cargo test -p tierfs-fuse --features services --test distributed
    # The tool tests (cp -a, tar, rsync, git, sqlite3) written once for every
    # store, here on the cluster (the rust stage runs them on local and memory).
    TIERFS_REQUIRE_TOOLS=1 run cargo test -p tierfs-fuse --features services --test tools cluster
    run cargo test -p tierfs-tests --features services --test distributed_faults -- --test-threads=1
    run cargo test -p tierfs-fuse --features services --test distributed_faults -- --test-threads=1
    run cargo build -p tierfs-fuse --release
    FUSE_WORK="$(mktemp -d /tmp/tierfs-conformance.XXXXXX)"
    chmod 755 "$FUSE_WORK"
    trap "fuse_cleanup; bash '$ROOT/scripts/services/garage.sh' stop '$dir/garage'; bash '$ROOT/scripts/services/redis.sh' stop '$dir/redis'; bash '$ROOT/scripts/services/redis-cluster.sh' stop '$dir/redis-cluster'; rm -rf '$dir'" EXIT
    local failed=()
    conformance s3 "$(conformance_s3_config)" "" 3000 || failed+=(s3)
    conformance prefer_cache "$(conformance_cache_config)" "" 20000 || failed+=(prefer_cache)
    fuse_cleanup
    # Last: 110,000 objects keep the cluster busy for minutes afterwards.
    run cargo test -p tierfs-fuse --features services --test distributed a_directory_of_100k -- --ignored \
        || failed+=(big-directory)
    if ((${#failed[@]} > 0)); then
        log "services failed: ${failed[*]}"
        return 1
    fi
}

# Conformance per backend (the table in docs/semantics.md): pjdfstest with
# the same expected failures as the local store (fuse-mount/tests/
# pjdfstest.toml, reasons in docs/semantics.md; an unexpected failure or an
# expected one that passes fails the run), then fsx. Over the cluster every
# fsx operation rewrites the file (up to 1 MiB) in the bucket, so fsx runs
# 3,000 operations there (about 75 s) and 20,000 over the prefer_cache
# stack (LRU, write-through, over a local primary).

conformance_s3_config() {
    cat <<EOF2
[backends.cluster]
type = "s3"
endpoint = "$TIERFS_S3_ENDPOINT"
region = "$TIERFS_S3_REGION"
bucket = "$TIERFS_S3_BUCKET"
prefix = "conformance-$$/"
access_key_id = "$TIERFS_S3_ACCESS_KEY_ID"
secret_access_key = "$TIERFS_S3_SECRET_ACCESS_KEY"
EOF2
}

conformance_cache_config() {
    cat <<EOF2
[backends.main]
type = "local"
path = "$FUSE_WORK/prefer_cache/data"
[policy]
type = "prefer_cache"
primary = "main"
cache = { capacity_mib = 64 }
EOF2
}

# conformance NAME CONFIG_TEXT PJDFSTEST_TESTS FSX_OPS (no tests named: all)
conformance() {
    local name="$1" config="$2" tests="$3" ops="$4" dir="$FUSE_WORK/$1" rc=0 started=$SECONDS
    local seed="${FSX_SEED:-$(((RANDOM << 15) | RANDOM))}"
    mkdir -p "$dir"
    chmod 755 "$dir"
    printf '%s\n' "$config" >"$dir/tierfs.toml"
    id tests >/dev/null 2>&1 || echo 'tests:x:::Dummy User for pjdfstest:/:/usr/sbin/nologin' | newusers
    fuse_mount "$dir" --config "$dir/tierfs.toml" --spool-dir "$dir" --allow-other || return 1
    log "+ [$name] pjdfstest ${tests:-(all)}"
    # shellcheck disable=SC2086 # the test groups are separate arguments
    (cd "$dir/mnt" && pjdfstest -c "$ROOT/fuse-mount/tests/pjdfstest.toml" -p "$dir/mnt" $tests) \
        >"$dir/pjdfstest.out" 2>&1 || rc=1
    sed -i 's/\x1b\[[0-9;]*m//g' "$dir/pjdfstest.out"
    grep -E '(FAILED|PASSED UNEXPECTEDLY)$' "$dir/pjdfstest.out" || true
    log "[$name] pjdfstest: $(grep -E '^Summary' "$dir/pjdfstest.out" || echo 'no summary') ($((SECONDS - started)) s)"
    ((rc == 0)) || tail -n 40 "$dir/pjdfstest.out"
    started=$SECONDS
    mkdir -p "$dir/artifacts"
    log "+ [$name] fsx: $ops operations, seed $seed"
    if fsx -f "$ROOT/fuse-mount/tests/fsx.toml" -N "$ops" -S "$seed" -P "$dir/artifacts" "$dir/mnt/fsx.bin" \
        >"$dir/fsx.out" 2>&1 && grep -q 'All operations completed A-OK' "$dir/fsx.out"; then
        log "[$name] fsx: $ops operations with seed $seed: A-OK ($((SECONDS - started)) s)"
    else
        tail -n 40 "$dir/fsx.out"
        log "!! [$name] fsx FAILED with seed $seed"
        rc=1
    fi
    fuse_unmount "$dir" || rc=1
    return "$rc"
}

# fuse: the FUSE front end mounted for real (needs root and /dev/fuse).
# 1. The crate's tests with every tool required (cp, tar, rsync, git,
#    sqlite3, two Unix users, remounts, SIGKILL), the 4 GiB bounded-memory
#    test included.
# 2. pjdfstest against a mount with --allow-other; the expected failures and
#    their reasons are in fuse-mount/tests/pjdfstest.toml (and
#    docs/semantics.md). pjdfstest itself fails the run on an unexpected
#    failure and on an expected failure that passes.
# 3. fsx for FSX_OPS operations with a printed seed.
stage_fuse() {
    apt_need fuse3 rsync sqlite3 libacl1-dev git attr
    cargo_tool_need pjdfstest
    cargo_tool_need fsx
    if ((EUID != 0)) || [[ ! -e /dev/fuse ]]; then
        log "the fuse stage mounts for real: it needs root and /dev/fuse"
        return 1
    fi
    local failed=()
    TIERFS_REQUIRE_TOOLS=1 run cargo test -p tierfs-fuse -- --include-ignored || failed+=(tests)
    # pjdfstest and fsx run against the optimised daemon (the debug build
    # makes fsx take minutes).
    run cargo build -p tierfs-fuse --release || return 1
    FUSE_WORK="$(mktemp -d /tmp/tierfs-fuse-stage.XXXXXX)"
    chmod 755 "$FUSE_WORK" # pjdfstest's users must reach the mount
    trap fuse_cleanup EXIT
    fuse_pjdfstest || failed+=(pjdfstest)
    fuse_fsx || failed+=(fsx)
    fuse_cleanup
    trap - EXIT
    if ((${#failed[@]} > 0)); then
        log "fuse failed: ${failed[*]}"
        return 1
    fi
}

FUSE_WORK=""
FUSE_PID=""

# fuse_mount DIR [ARGS...]: a fresh store in DIR/data mounted at DIR/mnt
# (or what ARGS name with --config).
fuse_mount() {
    local dir="$1" i store=(--root "$dir/data")
    shift
    [[ " $* " != *" --config "* ]] || store=()
    mkdir -p "$dir/mnt" "$dir/data"
    chmod 755 "$dir" "$dir/mnt"
    "$ROOT/target/release/tierfs" mount "${store[@]}" "$@" "$dir/mnt" 2>"$dir/tierfs.log" &
    FUSE_PID=$!
    for i in $(seq 1 500); do
        if awk -v m="$dir/mnt" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; then
            return 0
        fi
        if ! kill -0 "$FUSE_PID" 2>/dev/null; then
            log "tierfs exited before mounting:"
            cat "$dir/tierfs.log"
            return 1
        fi
        sleep 0.02
    done
    log "no mount at $dir/mnt after 10 s"
    return 1
}

# fuse_unmount DIR: unmounts and waits for the daemon; fails if it failed.
fuse_unmount() {
    local dir="$1" rc=0
    "$ROOT/target/release/tierfs" unmount "$dir/mnt" || umount -l "$dir/mnt" || true
    wait "$FUSE_PID" || rc=$?
    FUSE_PID=""
    if ((rc != 0)); then
        log "tierfs exited with $rc; its log:"
        tail -n 50 "$dir/tierfs.log"
    fi
    return "$rc"
}

# Leaves no mount and no daemon behind, whatever happened.
fuse_cleanup() {
    [[ -n "$FUSE_WORK" ]] || return 0
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v w="$FUSE_WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts)
    if [[ -n "$FUSE_PID" ]]; then
        kill "$FUSE_PID" 2>/dev/null || true
        wait "$FUSE_PID" 2>/dev/null || true
        FUSE_PID=""
    fi
    rm -rf "$FUSE_WORK"
    FUSE_WORK=""
}

fuse_pjdfstest() {
    local dir="$FUSE_WORK/pjdfstest" out rc=0
    id tests >/dev/null 2>&1 || echo 'tests:x:::Dummy User for pjdfstest:/:/usr/sbin/nologin' | newusers
    fuse_mount "$dir" --allow-other || return 1
    out="$FUSE_WORK/pjdfstest.out"
    log "+ pjdfstest -c fuse-mount/tests/pjdfstest.toml -p $dir/mnt (full output: last lines below on failure)"
    (cd "$dir/mnt" && pjdfstest -c "$ROOT/fuse-mount/tests/pjdfstest.toml" -p "$dir/mnt") >"$out" 2>&1 || rc=$?
    # A case that once failed 1 time in 20 (a truncating open of a file
    # being executed): repeated, so that a race shows.
    local i failures=0
    for i in $(seq 1 100); do
        (cd "$dir/mnt" && pjdfstest -c "$ROOT/fuse-mount/tests/pjdfstest.toml" -p "$dir/mnt" open::etxtbsy) \
            >>"$FUSE_WORK/etxtbsy.out" 2>&1 || failures=$((failures + 1))
    done
    log "pjdfstest open::etxtbsy 100 times: $failures failed"
    ((failures == 0)) || rc=1
    fuse_unmount "$dir" || rc=1
    # Strip colours before reading the results.
    sed -i 's/\x1b\[[0-9;]*m//g' "$out"
    grep -E '(FAILED|PASSED UNEXPECTEDLY)$' "$out" || true
    log "pjdfstest: $(grep -E '^Summary' "$out" || echo 'no summary')"
    if ((rc != 0)); then
        tail -n 40 "$out"
        return 1
    fi
}

fuse_fsx() {
    local dir="$FUSE_WORK/fsx" ops="${FSX_OPS:-100000}" seed="${FSX_SEED:-$(((RANDOM << 15) | RANDOM))}" rc=0
    fuse_mount "$dir" || return 1
    mkdir -p "$dir/artifacts"
    log "fsx: $ops operations, seed $seed (repeat with FSX_SEED=$seed scripts/test.sh fuse)"
    fsx -f "$ROOT/fuse-mount/tests/fsx.toml" -N "$ops" -S "$seed" -P "$dir/artifacts" "$dir/mnt/fsx.bin" \
        >"$FUSE_WORK/fsx.out" 2>&1 || rc=$?
    fuse_unmount "$dir" || rc=1
    if ((rc != 0)) || ! grep -q 'All operations completed A-OK' "$FUSE_WORK/fsx.out"; then
        tail -n 40 "$FUSE_WORK/fsx.out"
        log "!! fsx FAILED with seed $seed"
        return 1
    fi
    log "fsx: $ops operations with seed $seed: A-OK"
}

# fuzz: each cargo-fuzz target for FUZZ_SECONDS, starting from the committed
# seeds in fuzz/seeds/<target>; new inputs go to fuzz/corpus/<target>
# (ignored by git). Fails if any target crashes, leaks, times out or runs out
# of memory, naming the artifact. cargo-fuzz runs on the stable toolchain:
# `-s none` needs no unstable flags; RUSTC_BOOTSTRAP=1 lets stable accept the
# -Z flags that `-s address` adds (see fuzz/README.md).
stage_fuzz() {
    cmd_need c++ g++ # libfuzzer-sys compiles libFuzzer's C++
    cargo_tool_need cargo-fuzz
    local seconds="${FUZZ_SECONDS:-30}" sanitizer="${FUZZ_SANITIZER:-none}"
    # Sanitizers are passed to rustc as -Zsanitizer=...: let stable take them.
    [[ "$sanitizer" == none ]] || export RUSTC_BOOTSTRAP=1

    local targets=()
    if [[ -n "${FUZZ_TARGETS:-}" ]]; then
        read -r -a targets <<<"$FUZZ_TARGETS"
    else
        mapfile -t targets < <(cargo fuzz list)
    fi
    ((${#targets[@]} > 0)) || { log "no fuzz targets found"; return 1; }

    # One build for all targets, so that build time is not fuzzing time.
    run cargo fuzz build -s "$sanitizer"

    local target rc failed=() logdir="fuzz/target/logs"
    mkdir -p "$logdir"
    for target in "${targets[@]}"; do
        local corpus="fuzz/corpus/$target" seeds="fuzz/seeds/$target"
        local artifacts="fuzz/artifacts/$target" logfile="$logdir/$target.log"
        mkdir -p "$corpus" "$artifacts"
        local before after new=()
        before="$(ls -1 "$artifacts")"

        local args=(-max_total_time="$seconds" -timeout=10 -max_len=4096 -print_final_stats=1)
        [[ -f "fuzz/dict/$target.dict" ]] && args+=(-dict="fuzz/dict/$target.dict")
        local dirs=("$corpus")
        [[ -d "$seeds" ]] && dirs+=("$seeds")

        log "-- fuzz $target for ${seconds}s (sanitizer $sanitizer; full log: $logfile)"
        # Progress lines (NEW, REDUCE, pulse) and dictionary stats go only to the log file.
        local rcfile="$logdir/$target.rc"
        echo 1 >"$rcfile"
        {
            rc=0
            cargo fuzz run -s "$sanitizer" "$target" "${dirs[@]}" -- "${args[@]}" </dev/null || rc=$?
            echo "$rc" >"$rcfile"
        } 2>&1 | tee "$logfile" \
            | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)|^".*" # Uses: ' || true
        rc="$(cat "$rcfile")"

        after="$(ls -1 "$artifacts")"
        mapfile -t new < <(comm -13 <(sort <<<"$before") <(sort <<<"$after") | grep -E '^(crash|leak|timeout|oom)-' || true)
        if ((rc != 0 || ${#new[@]} > 0)); then
            failed+=("$target")
            log "!! fuzz target $target FAILED (exit $rc)"
            local a
            for a in "${new[@]}"; do
                log "!! artifact: $ROOT/$artifacts/$a"
                log "!!   reproduce: ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }cargo fuzz run -s $sanitizer $target $artifacts/$a"
            done
            ((${#new[@]} > 0)) || log "!! no artifact written; see $logfile"
        else
            log "-- fuzz $target: no crash ($(grep -E '^stat::number_of_executed_units' "$logfile" | awk '{print $2}' || true) runs)"
        fi
    done
    if ((${#failed[@]} > 0)); then
        log "fuzz failed: ${failed[*]}"
        return 1
    fi
}

# python: the `tierfs` Python package as a user gets it: a fresh virtual
# environment (target/python-venv), `pip install` of the package by its
# absolute path from another directory (pip builds the abi3 wheel with
# maturin, fetched through [build-system] requires), then the pytest suite
# in bindings-python/tests (fsspec and pandas come with the `test` extra).
stage_python() {
    cmd_need python3 python3
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_need python3-venv
    local venv="$ROOT/target/python-venv" elsewhere
    rm -rf "$venv"
    run python3 -m venv "$venv"
    elsewhere="$(mktemp -d)"
    (cd "$elsewhere" && run "$venv/bin/python" -m pip install --quiet "$ROOT/bindings-python[test]")
    rm -rf "$elsewhere"
    (cd "$ROOT/bindings-python" && run "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfE tests)
}

# node: the `tierfs` npm package as a user gets it: a fresh project in a
# temporary directory outside the repository runs `npm install` of
# bindings-node by its path (the install script builds the module with
# cargo), then `node --test` runs bindings-node/tests there (with typescript
# installed for the `tsc --noEmit` check) and prints node's summary.
stage_node() {
    cmd_need node nodejs
    cmd_need npm npm
    run bash "$ROOT/bindings-node/scripts/test-package.sh"
}

# ---- driver ----------------------------------------------------------------

usage() {
    cat <<EOF
usage: scripts/test.sh [--list] [STAGE...]
stages, in order: ${STAGES[*]}
EOF
}

has_stage() {
    local s
    for s in "${STAGES[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}

main() {
    local requested=() arg
    for arg in "$@"; do
        case "$arg" in
            --list) printf '%s\n' "${STAGES[@]}"; return 0 ;;
            -h | --help) usage; return 0 ;;
            -*) usage >&2; return 2 ;;
            *)
                if ! has_stage "$arg"; then
                    log "unknown stage: $arg" >&2
                    usage >&2
                    return 2
                fi
                requested+=("$arg")
                ;;
        esac
    done

    local selected=() s r
    for s in "${STAGES[@]}"; do
        if ((${#requested[@]} == 0)); then
            selected+=("$s")
        else
            for r in "${requested[@]}"; do
                if [[ "$r" == "$s" ]]; then selected+=("$s"); break; fi
            done
        fi
    done

    local names=() results=() times=() n_passed=0 n_failed=0 start end rc secs
    for s in "${selected[@]}"; do
        log ""
        log "== $s =="
        start=$(date +%s%N)
        set +e
        (
            set -eEuo pipefail
            # Name a failed command that run() did not already report.
            # shellcheck disable=SC2154 # err is set by the trap itself
            trap 'err=$?; [[ $BASH_COMMAND == return* ]] || echo "!! stage '"$s"': \`$BASH_COMMAND\` failed (exit $err) at line $LINENO" >&2' ERR
            "stage_$s"
        )
        rc=$?
        set -e
        end=$(date +%s%N)
        secs=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
        names+=("$s")
        times+=("$secs")
        if ((rc == 0)); then
            results+=(pass)
            n_passed=$((n_passed + 1))
        else
            results+=(FAIL)
            n_failed=$((n_failed + 1))
        fi
        log "== $s: ${results[-1]} in ${secs}s =="
    done

    log ""
    log "== summary =="
    printf '%-12s %-6s %10s\n' stage result seconds
    local i
    for i in "${!names[@]}"; do
        printf '%-12s %-6s %10s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
    done
    log "$n_passed passed, $n_failed failed"
    ((n_failed == 0))
}

main "$@"
