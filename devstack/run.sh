#!/usr/bin/env bash
# Starts the logbus services against the running dev stack (make up first):
# ingest, query API and the load generator, in the background with pid files
# in .devstack/run/ and logs in .devstack/logs/. devstack/down.sh stops them.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"
mkdir -p "$RUN" "$LOGS"

# The services read these (see `logbus-ingest --help`, `logbus-query-api --help`).
export LOGBUS_KAFKA_BROKERS="${LOGBUS_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export LOGBUS_CLICKHOUSE_URL="${LOGBUS_CLICKHOUSE_URL:-http://127.0.0.1:$CH_PORT}"

log "building release binaries (cargo build --release)"
cargo build --release -p logbus-ingest --bin logbus-ingest -p logbus-gen --bin logbus-gen
cargo build --release -p logbus-query-api --bin logbus-query-api
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"

# The built binaries are started directly (same as `cargo run --release -p ...
# --bin ...`) so that the pid file names the service itself, not a cargo parent.
launch logbus-ingest "$TARGET/logbus-ingest"
launch logbus-query-api "$TARGET/logbus-query-api"
launch logbus-gen "$TARGET/logbus-gen" --rate 200
API="http://${LOGBUS_API_LISTEN:-127.0.0.1:3000}"
INGEST="http://${LOGBUS_HTTP_ADDR:-127.0.0.1:9464}"
ready() { curl -fsS --max-time 2 "$1" >/dev/null 2>&1; }
for ((i = 0; i < 600; i++)); do
    for name in logbus-ingest logbus-query-api logbus-gen; do
        pid_alive "$name" || die "$name exited at startup: see $LOGS/$name.log"
    done
    ready "$API/healthz" && ready "$INGEST/readyz" && break
    sleep 0.1
done
ready "$API/healthz" || die "logbus-query-api not ready after 60 s: see $LOGS/logbus-query-api.log"
ready "$INGEST/readyz" || die "logbus-ingest not ready after 60 s: see $LOGS/logbus-ingest.log"
TOKEN="$(grep -o 'access token [^ ]*' "$LOGS/logbus-gen.log" | tail -n 1 | cut -d' ' -f3)"
log "running: logbus-ingest, logbus-query-api, logbus-gen (stop with make down)"
cat <<EOF
  query API        $API   (OpenAPI: $API/openapi.json)
  ingest metrics   $INGEST/metrics
  demo admin       user 1, access token $TOKEN
  try:             curl -s -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: 1' '$API/api/log/?page_size=5'
                   curl -s -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: 1' '$API/api/log/stat'
EOF
