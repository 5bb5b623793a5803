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
# Only the lines this run's generator writes count (its log is appended to across runs).
GEN_LOG_FROM=1
if ! pid_alive logbus-gen && [[ -f "$LOGS/logbus-gen.log" ]]; then
    GEN_LOG_FROM=$(($(wc -l <"$LOGS/logbus-gen.log") + 1))
fi
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
# The generator's seed is random unless LOGBUS_GEN_SEED is set: the token is read from the
# line this run's generator printed at start.
TOKEN=""
for ((i = 0; i < 100; i++)); do
    TOKEN="$(tail -n +"$GEN_LOG_FROM" "$LOGS/logbus-gen.log" | grep -o 'access token [^ ]*' |
        tail -n 1 | cut -d' ' -f3)"
    [[ -n "$TOKEN" ]] && break
    sleep 0.1
done
[[ -n "$TOKEN" ]] || die "logbus-gen printed no access token: see $LOGS/logbus-gen.log"
# The token works only once its identity event is ingested. Wait for that in ClickHouse (not
# by calling the API with a token it does not know yet: failed authentications may be
# rate-limited), then check that the API accepts it, so that the first request the user
# makes succeeds.
HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
DB="${LOGBUS_CLICKHOUSE_DATABASE:-logbus}"
stored() {
    curl -fsS --max-time 2 "$LOGBUS_CLICKHOUSE_URL/" --data-binary \
        "SELECT count() FROM \`$DB\`.users FINAL WHERE id = 1 AND access_token_sha256 = '$HASH'" \
        2>/dev/null | grep -qx '[1-9][0-9]*'
}
accepted() {
    curl -fsS --max-time 2 -H "Authorization: Bearer $TOKEN" -H 'New-Api-User: 1' \
        "$API/api/log/?page_size=1" 2>/dev/null | grep -q '"success":true'
}
for ((i = 0; i < 600; i++)); do
    pid_alive logbus-gen || die "logbus-gen exited: see $LOGS/logbus-gen.log"
    stored && break
    sleep 0.1
done
stored || die "the demo users were not ingested after 60 s: see $LOGS/logbus-ingest.log"
for ((i = 0; i < 10; i++)); do
    accepted && break
    sleep 1
done
accepted || die "the query API does not accept the demo token: see $LOGS/logbus-query-api.log"
log "running: logbus-ingest, logbus-query-api, logbus-gen (stop with make down)"
cat <<EOF
  query API        $API   (OpenAPI: $API/openapi.json)
  web console      $API/ui/   (sign in as user 1 with the token below: live tail, usage charts)
  ingest metrics   $INGEST/metrics
  demo admin       user 1, access token $TOKEN
  try:             curl -s -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: 1' '$API/api/log/?page_size=5'
                   curl -s -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: 1' '$API/api/log/stat'
                   curl -sN -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: 1' '$API/api/log/tail'
EOF
