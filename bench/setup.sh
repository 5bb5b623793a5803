#!/usr/bin/env bash
# Installs what the benchmark needs beyond the dev stack (run by `make install`): PostgreSQL,
# the Debian package, for the new-api baseline. Idempotent; the benchmark starts its own
# cluster on a loopback port (data in .devstack/bench/pg), not the package's default cluster.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "bench/setup: PostgreSQL present: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "bench/setup: installing PostgreSQL (apt package postgresql)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql
ls /usr/lib/postgresql/*/bin/postgres >/dev/null
