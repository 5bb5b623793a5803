#!/usr/bin/env bash
# Installs the Debian packages that `make run`, `make test` and `make bench` need and a fresh
# machine may lack, only those missing (idempotent; apt-get runs only when something is missing):
#   build-essential, pkg-config, zlib1g-dev, libssl-dev  building rdkafka's bundled librdkafka
#   python3-venv                                          the dev-stack venv
#   curl, ca-certificates                                 readiness checks, PyPI downloads
#   docker-compose                                        the compose file's validation test
#   postgresql                                            the benchmark's baseline (bench/), the bridge's tests
#   mariadb-server                                        the bridge's tests (a MySQL-dialect new-api source)
#   chromium                                              the web console's browser test (headless)
#   openjdk-17-jre-headless, maven                        Apache Kafka (devstack/kafka/pom.xml),
#                                                         only if `java` / `mvn` are not on PATH
# Needs root or sudo when something is missing.
set -euo pipefail
PACKAGES=(build-essential pkg-config zlib1g-dev libssl-dev python3-venv curl ca-certificates
    docker-compose postgresql mariadb-server chromium)
# Java and Maven may come from elsewhere (JAVA_HOME, an SDK manager): the packages only if absent.
command -v "${JAVA_HOME:+$JAVA_HOME/bin/}java" >/dev/null || PACKAGES+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || PACKAGES+=(maven)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system-packages: all present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "system-packages: missing ${missing[*]}; run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
echo "system-packages: installing ${missing[*]} (apt)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
