#!/usr/bin/env bash
# A three-primary Redis Cluster on free loopback ports for the tests.
#
#   scripts/services/redis-cluster.sh start DIR   # writes DIR/env with TIERFS_REDIS_CLUSTER_URLS
#   scripts/services/redis-cluster.sh stop DIR
set -euo pipefail

cmd=${1:?usage: redis-cluster.sh start|stop DIR}
dir=${2:?usage: redis-cluster.sh $cmd DIR}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
    for pidfile in "$dir"/node*/pid; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

case "$cmd" in
start)
    command -v redis-server >/dev/null || { echo "redis-cluster: redis-server is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    addrs=() urls=()
    for n in 1 2 3; do
        # The cluster bus listens on port + 10000: both must be free.
        while :; do
            port=$(free_port)
            ((port + 10000 < 65536)) && ! (echo >"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null && break
        done
        mkdir -p "$dir/node$n"
        (
            cd "$dir/node$n"
            redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
                --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
                --daemonize no >log 2>&1 &
            echo $! >pid
        )
        for _ in $(seq 100); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        addrs+=("127.0.0.1:$port")
        urls+=("redis://127.0.0.1:$port")
    done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1; then
        echo "redis-cluster: creating the cluster failed" >&2
        cat "$dir/create.log" >&2
        stop
        exit 1
    fi
    for _ in $(seq 100); do
        if redis-cli -p "${addrs[0]#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
            (IFS=,; echo "export TIERFS_REDIS_CLUSTER_URLS=${urls[*]}") >"$dir/env"
            echo "redis-cluster: three primaries on ${addrs[*]}"
            exit 0
        fi
        sleep 0.1
    done
    echo "redis-cluster: the cluster did not become ready" >&2
    stop
    exit 1
    ;;
stop)
    stop
    ;;
*)
    echo "usage: redis-cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac
