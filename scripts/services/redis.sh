#!/usr/bin/env bash
# A redis-server on a free loopback port for the tests.
#
#   scripts/services/redis.sh start DIR   # writes DIR/env with TIERFS_REDIS_URL
#   scripts/services/redis.sh stop DIR
set -euo pipefail

cmd=${1:?usage: redis.sh start|stop DIR}
dir=${2:?usage: redis.sh $cmd DIR}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$cmd" in
start)
    command -v redis-server >/dev/null || { echo "redis: redis-server is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --maxmemory 256mb --maxmemory-policy allkeys-lru >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 100); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            echo "export TIERFS_REDIS_URL=redis://127.0.0.1:$port" >"$dir/env"
            echo "export TIERFS_REDIS_PORT=$port" >>"$dir/env"
            echo "export TIERFS_REDIS_DIR=$dir" >>"$dir/env"
            echo "redis: listening on 127.0.0.1:$port"
            exit 0
        fi
        sleep 0.1
    done
    echo "redis: did not start" >&2
    cat "$dir/log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/pid" ] || exit 0
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
    ;;
*)
    echo "usage: redis.sh start|stop DIR" >&2
    exit 2
    ;;
esac
