# Multi-stage build of the two logbus services. docker-compose.yml builds the `ingest` and
# `query-api` targets.
FROM rust:1-bookworm AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys (vendored): it needs a C toolchain and make.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p logbus-ingest -p logbus-query-api \
    && mkdir -p /out \
    && cp target/release/logbus-ingest target/release/logbus-gen target/release/logbus-query-api /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 logbus
USER logbus
ENTRYPOINT ["/usr/bin/tini", "--"]

FROM runtime AS ingest
COPY --from=build /out/logbus-ingest /out/logbus-gen /usr/local/bin/
EXPOSE 9464
CMD ["logbus-ingest"]

FROM runtime AS query-api
COPY --from=build /out/logbus-query-api /usr/local/bin/
EXPOSE 3000
CMD ["logbus-query-api"]
