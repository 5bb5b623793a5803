#!/usr/bin/env bash
# Stops what devstack/up.sh, devstack/run.sh and devstack/demo-newapi.sh started, by pid file only.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

for name in logbus-bridge logbus-gen logbus-query-api logbus-ingest clickhouse kafka; do
    stop_pid "$name" 30
done
log "stopped"
