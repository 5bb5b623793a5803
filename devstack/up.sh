#!/usr/bin/env bash
# Starts the dev stack on loopback: tansu (Kafka protocol, memory storage) and
# chfront (ClickHouse HTTP over chDB, data in $LOGBUS_CH_DATA). Idempotent.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ -x "$BIN/tansu" ] && [ -x "$VENV/bin/python" ] || die "not installed: run devstack/install.sh (make install)"
mkdir -p "$RUN" "$LOGS" "$CH_DATA"
TIMEOUT="${LOGBUS_DEVSTACK_TIMEOUT:-60}"

# start NAME PORT CMD... : start in the background unless already running.
start() {
    local name="$1" port="$2"
    shift 2
    if pid_alive "$name"; then
        local was
        was="$(cat "$RUN/$name.port" 2>/dev/null || true)"
        if [ "$was" != "$port" ]; then
            die "$name (pid $(cat "$RUN/$name.pid")) is already running on port ${was:-?}, not $port; run devstack/down.sh first"
        fi
        if port_open "$port"; then
            log "$name already running (pid $(cat "$RUN/$name.pid")) on 127.0.0.1:$port"
            return 0
        fi
        die "$name (pid $(cat "$RUN/$name.pid")) is running but 127.0.0.1:$port does not answer; run devstack/down.sh"
    fi
    rm -f "$RUN/$name.pid"
    if port_open "$port"; then
        die "127.0.0.1:$port is already in use by another process (not started by devstack); free it or set the port env var"
    fi
    log "starting $name on 127.0.0.1:$port (log: $LOGS/$name.log)"
    nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
    echo "$port" >"$RUN/$name.port"
}

# wait_ready NAME CHECK...
wait_ready() {
    local name="$1" i
    shift
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        if "$@"; then return 0; fi
        if ! pid_alive "$name"; then
            tail -n 20 "$LOGS/$name.log" >&2 || true
            rm -f "$RUN/$name.pid"
            die "$name exited during startup (log above: $LOGS/$name.log)"
        fi
        sleep 0.1
    done
    tail -n 20 "$LOGS/$name.log" >&2 || true
    die "$name not ready after ${TIMEOUT}s"
}

# preflight: fail before starting anything if a port is taken by a stranger
for svc in "kafka:$KAFKA_PORT" "clickhouse:$CH_PORT"; do
    name="${svc%%:*}" port="${svc##*:}"
    if ! pid_alive "$name" && port_open "$port"; then
        die "127.0.0.1:$port (for $name) is already in use by another process (not started by devstack); free it or set LOGBUS_KAFKA_PORT / LOGBUS_CH_PORT"
    fi
done

ch_ping() {
    [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$CH_PORT/ping" 2>/dev/null)" = "Ok." ]
}

start kafka "$KAFKA_PORT" "$BIN/tansu" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/
start clickhouse "$CH_PORT" "$VENV/bin/python" "$DEVSTACK_SRC/chfront/chfront.py" \
    --host 127.0.0.1 --port "$CH_PORT" --data "$CH_DATA"

wait_ready kafka port_open "$KAFKA_PORT"
wait_ready clickhouse ch_ping
log "ready:"
echo "  kafka      127.0.0.1:$KAFKA_PORT   (tansu, in-memory: topics are lost on restart)"
echo "  clickhouse http://127.0.0.1:$CH_PORT   (chfront/chDB, data: $CH_DATA)"
echo "  env: LOGBUS_TEST_KAFKA=127.0.0.1:$KAFKA_PORT LOGBUS_TEST_CLICKHOUSE=http://127.0.0.1:$CH_PORT"
