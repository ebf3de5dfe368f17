#!/usr/bin/env bash
# A three-node Garage cluster on 127.0.0.1 for the tests and benchmarks.
#
#   scripts/services/garage.sh start DIR   # start, lay out, create buckets and key;
#                                          # writes DIR/env with TIERFS_S3_* variables
#   scripts/services/garage.sh stop DIR    # stop every node
#   scripts/services/garage.sh stop-node DIR N / start-node DIR N   (N = 1..3)
#
# Node N listens for S3 on 39N0 and for RPC on 39N1 (N = 1..3, offset by
# GARAGE_PORT_BASE, default 39000). Replication factor 3: one node down,
# reads and writes go on; two down, S3 answers 503.
set -euo pipefail

cmd=${1:?usage: garage.sh start|stop|stop-node|start-node DIR [N]}
dir=${2:?usage: garage.sh $cmd DIR}
base=${GARAGE_PORT_BASE:-39000}
garage=${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
unset AWS_CA_BUNDLE SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE || true

s3_port() { echo $((base + 10 * $1)); }
rpc_port() { echo $((base + 10 * $1 + 1)); }

write_config() {
    local n=$1 secret=$2 peers=$3
    mkdir -p "$dir/node$n/meta" "$dir/node$n/data"
    cat >"$dir/node$n/garage.toml" <<TOML
metadata_dir = "$dir/node$n/meta"
data_dir = "$dir/node$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_public_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_secret = "$secret"
bootstrap_peers = [$peers]

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$(s3_port "$n")"
root_domain = ".s3.garage.localhost"
TOML
}

start_node() {
    local n=$1
    RUST_LOG=${GARAGE_LOG:-warn} nohup "$garage" -c "$dir/node$n/garage.toml" server \
        >"$dir/node$n/log" 2>&1 &
    echo $! >"$dir/node$n/pid"
}

stop_node() {
    local n=$1 pid
    [ -f "$dir/node$n/pid" ] || return 0
    pid=$(cat "$dir/node$n/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/node$n/pid"
}

g() { "$garage" -c "$dir/node1/garage.toml" "$@"; }

wait_for() {
    local what=$1; shift
    for _ in $(seq 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "garage: timed out waiting for $what" >&2
    tail -20 "$dir"/node*/log >&2 || true
    return 1
}

case "$cmd" in
start)
    [ -x "$garage" ] || { echo "garage: no binary at $garage (cargo install garage --locked)" >&2; exit 1; }
    mkdir -p "$dir"
    secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    for n in 1 2 3; do write_config "$n" "$secret" ""; start_node "$n"; done
    # A node makes its key at first start. With the ids known, every config
    # lists all nodes as bootstrap peers, so a restarted node rejoins by itself.
    peers=""
    for n in 1 2 3; do
        wait_for "node $n" "$garage" -c "$dir/node$n/garage.toml" node id -q
        id=$("$garage" -c "$dir/node$n/garage.toml" node id -q 2>/dev/null | cut -d@ -f1)
        peers="$peers${peers:+, }\"$id@127.0.0.1:$(rpc_port "$n")\""
        echo "$id" >"$dir/node$n/id"
    done
    for n in 1 2 3; do write_config "$n" "$secret" "$peers"; done
    wait_for "node 1 RPC" g status
    for n in 2 3; do g node connect "$(cat "$dir/node$n/id")@127.0.0.1:$(rpc_port "$n")" >/dev/null; done
    for n in 1 2 3; do g layout assign -z dc1 -c 1G "$(cat "$dir/node$n/id")" >/dev/null; done
    g layout apply --version 1 >/dev/null
    wait_for "the bucket" g bucket create tierfs
    key_out=$(g key create tierfs-key)
    key_id=$(echo "$key_out" | awk '/Key ID/ {print $NF}')
    key_secret=$(echo "$key_out" | awk '/Secret key/ {print $NF}')
    g bucket allow --read --write --owner tierfs --key tierfs-key >/dev/null
    # A second bucket: stores spread over two buckets (the sharded policy).
    g bucket create tierfs-second >/dev/null
    g bucket allow --read --write --owner tierfs-second --key tierfs-key >/dev/null
    cat >"$dir/env" <<ENV
export TIERFS_S3_ENDPOINT=http://127.0.0.1:$(s3_port 1)
export TIERFS_S3_ENDPOINTS=http://127.0.0.1:$(s3_port 1),http://127.0.0.1:$(s3_port 2),http://127.0.0.1:$(s3_port 3)
export TIERFS_S3_REGION=garage
export TIERFS_S3_BUCKET=tierfs
export TIERFS_S3_SECOND_BUCKET=tierfs-second
export TIERFS_S3_ACCESS_KEY_ID=$key_id
export TIERFS_S3_SECRET_ACCESS_KEY=$key_secret
export TIERFS_GARAGE_DIR=$dir
ENV
    echo "garage: 3 nodes up, buckets tierfs and tierfs-second, key $key_id; variables in $dir/env"
    ;;
stop)
    for n in 1 2 3; do stop_node "$n"; done
    ;;
stop-node)
    stop_node "${3:?node number}"
    ;;
start-node)
    start_node "${3:?node number}"
    ;;
*)
    echo "usage: garage.sh start|stop|stop-node|start-node DIR [N]" >&2
    exit 2
    ;;
esac
