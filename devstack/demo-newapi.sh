#!/usr/bin/env bash
# `make demo-newapi`: logbus beside a (simulated) unmodified new-api, against the running dev
# stack (make up first). Creates a small new-api-shaped SQLite database once (users from
# 100001, clear of logbus-gen's ids; random credentials), then starts ingest, the query API
# and `logbus-bridge run` over it, and prints the demo root's access token and API key once
# the API accepts them. devstack/down.sh stops everything by pid file.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

DEMO="$DS/demo-newapi"
DB="$DEMO/one-api.db"
mkdir -p "$DEMO"
export LOGBUS_KAFKA_BROKERS="${LOGBUS_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export LOGBUS_CLICKHOUSE_URL="${LOGBUS_CLICKHOUSE_URL:-http://127.0.0.1:$CH_PORT}"

log "building release binaries (cargo build --release)"
cargo build --release -p logbus-ingest --bin logbus-ingest -p logbus-query-api --bin logbus-query-api \
    -p logbus-bridge --bin logbus-bridge --bin logbus-bridge-demo-db
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"

if [ ! -f "$DB" ]; then
    # The checkpoint and namespace belong to one database: a new database gets new ones, so
    # its row ids cannot collide with an earlier demo's event ids.
    rm -f "$DEMO/checkpoint.json"
    echo "demo-newapi-$(date +%s)" >"$DEMO/namespace"
    "$TARGET/logbus-bridge-demo-db" "$DB" --first-user-id 100001 --rows 20000 \
        --env-file "$DEMO/credentials.env" >/dev/null
fi
# shellcheck disable=SC1091
source "$DEMO/credentials.env"
[ -n "${ACCESS_TOKEN:-}" ] && [ -n "${API_KEY:-}" ] || die "no demo credentials in $DEMO/credentials.env"
TOKEN="$ACCESS_TOKEN"

launch logbus-ingest "$TARGET/logbus-ingest"
launch logbus-query-api "$TARGET/logbus-query-api"
launch logbus-bridge env LOGBUS_BRIDGE_SQL_DSN="$DB" LOGBUS_BRIDGE_CHECKPOINT="$DEMO/checkpoint.json" \
    LOGBUS_BRIDGE_NAMESPACE="$(cat "$DEMO/namespace")" "$TARGET/logbus-bridge" run

API="http://${LOGBUS_API_LISTEN:-127.0.0.1:3000}"
# Ready when the bridged root's token works. Its identity is awaited in ClickHouse, not by
# calling the API with a token it does not know yet (failed authentications are rate-limited
# per client address), then the API is asked once it should accept it.
HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
CH_DB="${LOGBUS_CLICKHOUSE_DATABASE:-logbus}"
stored() {
    curl -fsS --max-time 2 "$LOGBUS_CLICKHOUSE_URL/" --data-binary \
        "SELECT count() FROM \`$CH_DB\`.users FINAL WHERE id = $ROOT_ID AND access_token_sha256 = '$HASH'" \
        2>/dev/null | grep -qx '[1-9][0-9]*'
}
accepted() {
    curl -fsS --max-time 2 -H "Authorization: Bearer $TOKEN" -H "New-Api-User: $ROOT_ID" \
        "$API/api/log/?p=1&page_size=1&start_timestamp=0" 2>/dev/null | grep -q '"success":true'
}
for ((i = 0; i < 1200; i++)); do
    for name in logbus-ingest logbus-query-api logbus-bridge; do
        pid_alive "$name" || die "$name exited: see $LOGS/$name.log"
    done
    stored && break
    sleep 0.1
done
stored || die "the demo root was not ingested after 120 s: see $LOGS/logbus-bridge.log and $LOGS/logbus-ingest.log"
for ((i = 0; i < 10; i++)); do
    accepted && break
    sleep 1
done
accepted || die "the query API does not accept the demo token: see $LOGS/logbus-query-api.log"
log "running: logbus-ingest, logbus-query-api, logbus-bridge over $DB (stop with make down)"
cat <<INFO
  new-api database  $DB ($LOG_ROWS log rows, users 100001.., bridged by logbus-bridge run)
  query API         $API
  demo root         user $ROOT_ID, access token $TOKEN
  try:              curl -s -H 'Authorization: Bearer $TOKEN' -H 'New-Api-User: $ROOT_ID' '$API/api/log/stat'
                    curl -s -H 'Authorization: Bearer $API_KEY' '$API/api/log/token'
INFO
