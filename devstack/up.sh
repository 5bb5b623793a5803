#!/usr/bin/env bash
# Starts the dev stack on loopback: Apache Kafka (KRaft, one broker+controller, log
# directory in $LOGBUS_KAFKA_DATA, formatted on first start; the demo topics created) and
# chfront (ClickHouse HTTP over chDB, data in $LOGBUS_CH_DATA). Idempotent.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ -n "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null)" ] && [ -x "$VENV/bin/python" ] ||
    die "not installed: run devstack/install.sh (make install)"
mkdir -p "$RUN" "$LOGS" "$CH_DATA" "$KAFKA_HOME" "$KAFKA_DATA"
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
for svc in "kafka:$KAFKA_PORT" "kafka:$KAFKA_CONTROLLER_PORT" "clickhouse:$CH_PORT"; do
    name="${svc%%:*}" port="${svc##*:}"
    if ! pid_alive "$name" && port_open "$port"; then
        die "127.0.0.1:$port (for $name) is already in use by another process (not started by devstack); free it or set LOGBUS_KAFKA_PORT / LOGBUS_KAFKA_CONTROLLER_PORT / LOGBUS_CH_PORT"
    fi
done

ch_ping() {
    [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$CH_PORT/ping" 2>/dev/null)" = "Ok." ]
}

# The broker's heap: 1 GiB at most on the development machines.
case "$KAFKA_HEAP" in
    [1-9]*[mM]) [ "${KAFKA_HEAP%[mM]}" -le 1024 ] || die "LOGBUS_KAFKA_HEAP=$KAFKA_HEAP: 1024m (1g) at most" ;;
    1[gG]) ;;
    *) die "LOGBUS_KAFKA_HEAP=$KAFKA_HEAP: give megabytes (512m) or 1g, 1 GiB at most" ;;
esac

# Apache Kafka: the configuration is written on every start (ports may change; the data stays).
# node 1 is broker and the only controller voter (static quorum, controller.quorum.voters).
if ! pid_alive kafka; then
    cat >"$KAFKA_HOME/server.properties" <<PROPS
# written by devstack/up.sh on each start; edit up.sh, not this file
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
# the tests and up.sh create their topics (admin API); a typo'd topic name is an error, as in production
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# one node: internal topics with replication factor 1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# a dev/test broker: no wait for more members before the first rebalance
group.initial.rebalance.delay.ms=0
# a broker killed (SIGKILL) and restarted re-registers once its old session expired: 4 s, not 9
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
# a small machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
PROPS
    if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
        cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid)"
        log "formatting KRaft storage $KAFKA_DATA (cluster id $cluster_id)"
        kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_HOME/server.properties" ||
            die "kafka storage format failed (output above)"
    fi
fi
start kafka "$KAFKA_PORT" "$JAVA" -Xms128m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$DEVSTACK_SRC/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_HOME/server.properties"
start clickhouse "$CH_PORT" "$VENV/bin/python" "$DEVSTACK_SRC/chfront/chfront.py" \
    --host 127.0.0.1 --port "$CH_PORT" --data "$CH_DATA"

wait_ready kafka port_open "$KAFKA_PORT"
# The port answers: now the metadata (a topic list through the admin API) and the demo topics
# (partition counts as in docker-compose.yml), created once; they are kept across restarts.
# (at most $TIMEOUT attempts, each up to 30 s)
topics=""
for ((i = 0; i < TIMEOUT; i++)); do
    if topics="$(KAFKA_TOOL_TIMEOUT=30 kafka_tool org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list 2>"$LOGS/kafka-tools.log")"; then
        break
    fi
    pid_alive kafka || { tail -n 20 "$LOGS/kafka.log" >&2; die "kafka exited during startup (log above: $LOGS/kafka.log)"; }
    topics=""
    sleep 1
done
[ "$i" -lt "$TIMEOUT" ] || { cat "$LOGS/kafka-tools.log" >&2; die "kafka does not list its topics after ${TIMEOUT}s (tool output above, broker log: $LOGS/kafka.log)"; }
for spec in gateway.logs:12 gateway.identity:1 gateway.logs.dlq:3; do
    topic="${spec%%:*}" partitions="${spec##*:}"
    if ! grep -qxF "$topic" <<<"$topics"; then
        log "creating topic $topic ($partitions partitions)"
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --create \
            --if-not-exists --topic "$topic" --partitions "$partitions" --replication-factor 1 >/dev/null ||
            die "could not create topic $topic"
    fi
done
wait_ready clickhouse ch_ping
log "ready:"
echo "  kafka      127.0.0.1:$KAFKA_PORT   (Apache Kafka $(basename "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar)" .jar | sed 's/^kafka_2.13-//'), KRaft; controller 127.0.0.1:$KAFKA_CONTROLLER_PORT; data: $KAFKA_DATA)"
echo "  clickhouse http://127.0.0.1:$CH_PORT   (chfront/chDB, data: $CH_DATA)"
echo "  env: LOGBUS_TEST_KAFKA=127.0.0.1:$KAFKA_PORT LOGBUS_TEST_CLICKHOUSE=http://127.0.0.1:$CH_PORT"
