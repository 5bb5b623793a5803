# Shared settings for the dev-stack scripts. Sourced, not executed.
# shellcheck shell=bash
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVSTACK_SRC="$REPO_ROOT/devstack"
DS="${LOGBUS_DEVSTACK_DIR:-$REPO_ROOT/.devstack}"
case "$DS" in /*) ;; *) DS="$REPO_ROOT/$DS" ;; esac
KAFKA_PORT="${LOGBUS_KAFKA_PORT:-9092}"
CH_PORT="${LOGBUS_CH_PORT:-8123}"
CH_DATA="${LOGBUS_CH_DATA:-$DS/data/clickhouse}"
case "$CH_DATA" in /*) ;; *) CH_DATA="$REPO_ROOT/$CH_DATA" ;; esac
# Apache Kafka (KRaft, one broker+controller): jars from devstack/kafka/pom.xml in $KAFKA_LIBS,
# the generated server.properties in $KAFKA_HOME, log directory (data) in $KAFKA_DATA.
KAFKA_CONTROLLER_PORT="${LOGBUS_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP="${LOGBUS_KAFKA_HEAP:-512m}"
KAFKA_HOME="$DS/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="${LOGBUS_KAFKA_DATA:-$DS/data/kafka}"
case "$KAFKA_DATA" in /*) ;; *) KAFKA_DATA="$REPO_ROOT/$KAFKA_DATA" ;; esac
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
VENV="$DS/venv"
BIN="$DS/bin"
RUN="$DS/run"
LOGS="$DS/logs"

log() { echo "devstack: $*"; }
die() { echo "devstack: ERROR: $*" >&2; exit 1; }

# pid_alive NAME -> 0 if .devstack/run/NAME.pid names a live process
pid_alive() {
    local f="$RUN/$1.pid" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# kafka_tool MAIN-CLASS ARGS...: runs one of the Kafka command-line tools (kafka.tools.StorageTool,
# org.apache.kafka.tools.TopicCommand, ...) from $KAFKA_LIBS, warnings and errors on stderr;
# killed after $KAFKA_TOOL_TIMEOUT seconds (60).
kafka_tool() {
    local main="$1"
    shift
    timeout "${KAFKA_TOOL_TIMEOUT:-60}" "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$DEVSTACK_SRC/kafka/log4j2-tools.properties" \
        -cp "$KAFKA_LIBS/*" "$main" "$@"
}

# port_open PORT -> 0 if something accepts TCP connections on 127.0.0.1:PORT
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_pid NAME [TIMEOUT]: SIGTERM the pid in .devstack/run/NAME.pid, wait, SIGKILL.
stop_pid() {
    local name="$1" timeout="${2:-15}" f="$RUN/$1.pid" pid i
    [ -f "$f" ] || return 0
    pid="$(cat "$f" 2>/dev/null)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < timeout * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop in ${timeout}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$f" "$RUN/$name.port"
}

# launch NAME COMMAND...: starts COMMAND in the background unless NAME runs already; pid in
# .devstack/run/NAME.pid, output appended to .devstack/logs/NAME.log. The binary is started
# directly (not through cargo) so that the pid file names the service itself.
launch() {
    local name="$1"
    shift
    mkdir -p "$RUN" "$LOGS"
    if pid_alive "$name"; then
        log "$name already running (pid $(cat "$RUN/$name.pid"))"
        return 0
    fi
    log "starting $name (log: $LOGS/$name.log)"
    nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}
