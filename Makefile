# logbus dev tasks. The local stack (Apache Kafka + ClickHouse HTTP)
# lives in .devstack/ (git-ignored); see devstack/*.sh.
SHELL := /bin/bash
FUZZ_SECONDS ?= 60

export LOGBUS_KAFKA_PORT ?= 9092
export LOGBUS_CH_PORT ?= 8123
DEVSTACK_DIR := $(or $(LOGBUS_DEVSTACK_DIR),.devstack)
DEVSTACK_VENV := $(DEVSTACK_DIR)/venv

.PHONY: install up down run demo-newapi stack-test lint fuzz-smoke test

# The Debian packages a fresh machine may lack (only those missing; PostgreSQL included, for the
# benchmark's baseline), then the dev stack: `make bench` needs nothing `make install` did not install.
install:
	devstack/system-packages.sh
	devstack/install.sh

up: install
	devstack/up.sh

down:
	devstack/down.sh

run: up
	devstack/run.sh

# logbus beside a simulated new-api: a new-api-shaped SQLite database bridged by logbus-bridge
# (docs/adopting.md). Can run beside `make run` (its users start at 100001).
demo-newapi: up
	devstack/demo-newapi.sh

stack-test: install
	cd devstack/chfront && ../../$(DEVSTACK_VENV)/bin/python -m pytest -q -p no:cacheprovider tests

lint:
	cargo fmt --all --check
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo clippy --workspace --all-targets -- -D warnings
	python3 devstack/lint/module_cycles.py runtime projections ingest query-api gen bridge devstack bench

# Each fuzz target for FUZZ_SECONDS (default 60) over its committed corpus (fuzz/README.md);
# installs a minimal nightly and cargo-fuzz when missing.
fuzz-smoke:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/smoke.sh

# LOGBUS_DEVSTACK_DIR: where the tests find the venv `make install` made (schemathesis for
# the OpenAPI fuzz test, Python for the private ClickHouse fronts) and the Kafka jars.
test: up stack-test lint fuzz-smoke
	LOGBUS_TEST_KAFKA=127.0.0.1:$(LOGBUS_KAFKA_PORT) \
	LOGBUS_TEST_CLICKHOUSE=http://127.0.0.1:$(LOGBUS_CH_PORT) \
	LOGBUS_DEVSTACK_DIR=$(abspath $(DEVSTACK_DIR)) \
	cargo test --workspace

# Benchmark suite (bench/README.md): logbus vs new-api's PostgreSQL logs table on this machine.
# Writes bench/results/<date>.md. BENCH_ARGS=--quick for a smoke run. The results give the time
# of the whole command (from when make started: install, release build and suite).
BENCH_STARTED := $(shell date +%s)
.PHONY: bench
bench: up
	cargo build --release -p logbus-bench -p logbus-ingest -p logbus-query-api -p logbus-bridge
	LOGBUS_BENCH_COMMAND_STARTED=$(BENCH_STARTED) \
	target/release/logbus-bench --brokers 127.0.0.1:$(LOGBUS_KAFKA_PORT) $(BENCH_ARGS)
