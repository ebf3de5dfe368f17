# Helpers shared by the mount benchmarks (bench-fuse.sh, bench-partial.sh, bench-threads.sh, ...);
# sourced, not run. They expect DAEMON_PID to name the daemon being mounted.

# wait_mounted MNT: waits up to 30 s for MNT in /proc/mounts; fails at once
# if the daemon exits first.
wait_mounted() {
    local mnt="$1" _
    for _ in $(seq 1 1500); do
        awk -v m="$mnt" '$2 == m { found = 1 } END { exit !found }' /proc/mounts && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited before mounting $mnt" >&2; return 1; }
        sleep 0.02
    done
    echo "no mount at $mnt" >&2
    return 1
}

# stop_mount: unmounts MNT and ends DAEMON_PID (each when set), then
# clears both.
stop_mount() {
    [[ -n "$MNT" ]] && { umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; }
    if [[ -n "$DAEMON_PID" ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    MNT="" DAEMON_PID=""
}

# drop_caches: writes back and drops the kernel's page cache (needs root).
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# cpu_seconds PID: utime + stime in seconds.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# cluster_configs DIR: from the TIERFS_S3_* variables of a started Garage
# cluster (scripts/services/garage.sh), writes DIR/tierfs-s3.toml (an `s3`
# backend `cluster` under `always_local`) and DIR/s3fs.passwd, and sets
# S3_PORT.
cluster_configs() {
    local dir="$1"
    S3_PORT="${TIERFS_S3_ENDPOINT##*:}"
    cat >"$dir/tierfs-s3.toml" <<TOML
[backends.cluster]
type = "s3"
endpoint = "$TIERFS_S3_ENDPOINT"
region = "$TIERFS_S3_REGION"
bucket = "$TIERFS_S3_BUCKET"
access_key_id = "$TIERFS_S3_ACCESS_KEY_ID"
secret_access_key = "$TIERFS_S3_SECRET_ACCESS_KEY"

[policy]
type = "always_local"
backend = "cluster"
TOML
    echo "$TIERFS_S3_ACCESS_KEY_ID:$TIERFS_S3_SECRET_ACCESS_KEY" >"$dir/s3fs.passwd"
    chmod 600 "$dir/s3fs.passwd"
}
