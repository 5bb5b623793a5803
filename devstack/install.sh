#!/usr/bin/env bash
# Installs the dev stack into .devstack/ (idempotent, each part keyed on a stamp):
#  * Apache Kafka: the jars of devstack/kafka/pom.xml (the broker and its tools, pinned) from
#    Maven Central into .devstack/kafka/libs, by `mvn dependency:copy-dependencies`. Needs
#    Java 17+ and Maven; nothing else is downloaded for it.
#  * a Python venv with the pinned requirements (chDB for chfront, pytest, schemathesis for the
#    OpenAPI fuzz test).
set -euo pipefail
# shellcheck source=devstack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mkdir -p "$DS" "$BIN" "$RUN" "$LOGS"

install_kafka() {
    local pom="$DEVSTACK_SRC/kafka/pom.xml" stamp="$KAFKA_HOME/.libs-stamp" want java_version major
    command -v "$JAVA" >/dev/null ||
        die "java not found (need Java 17 or newer for Apache Kafka 4; set JAVA_HOME or install openjdk-17-jre-headless)"
    java_version="$("$JAVA" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)"
    major="${java_version%%.*}"
    [ "$major" = 1 ] && major="$(echo "$java_version" | cut -d. -f2)"
    [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 17 ] ||
        die "$JAVA is version '${java_version:-unknown}': Apache Kafka 4 needs Java 17 or newer (set JAVA_HOME)"
    want="$(sha256sum "$pom" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -n "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null)" ]; then
        log "Apache Kafka already installed (pom unchanged): $KAFKA_LIBS"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch Apache Kafka from Maven Central; install maven)"
    log "fetching Apache Kafka jars of devstack/kafka/pom.xml from Maven Central into $KAFKA_LIBS"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$KAFKA_LIBS.tmp"
    # (sed: Maven 3.8 writes ANSI colour resets even with -B; pipefail keeps mvn's exit status)
    if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS.tmp" 2>&1 |
        sed 's/\x1b\[[0-9;]*m//g'; then
        rm -rf "$KAFKA_LIBS.tmp"
        die "mvn could not fetch the Apache Kafka jars (output above): is Maven Central (https://repo.maven.apache.org) reachable?"
    fi
    [ -n "$(ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar 2>/dev/null)" ] || die "mvn ran but no kafka_2.13 jar is in $KAFKA_LIBS.tmp"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    echo "$want" >"$stamp"
    log "Apache Kafka $(basename "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar)" .jar | sed 's/^kafka_2.13-//'): $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
}

install_python() {
    local py="${PYTHON:-python3}" want stamp="$DS/.install-stamp"
    command -v "$py" >/dev/null || die "$py not found"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV with $($py --version 2>&1)"
        "$py" -m venv "$VENV"
    fi
    want="$( (cat "$DEVSTACK_SRC/requirements.txt"; "$VENV/bin/python" --version) | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "python venv already installed (requirements unchanged): $VENV"
        return 0
    fi
    log "installing pinned requirements from devstack/requirements.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$DEVSTACK_SRC/requirements.txt"
    "$VENV/bin/python" -c 'import chdb, lz4, clickhouse_cityhash, schemathesis' || die "python deps did not import"
    echo "$want" >"$stamp"
}

install_kafka
install_python
log "install done"
