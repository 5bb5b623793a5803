# Multi-stage build of the logbus services and the demo load generator. docker-compose.yml
# builds the `ingest`, `query-api` and `bridge` targets; the `gen` target holds `logbus-gen`
# alone (a demo tool, not part of the ingest image).
FROM rust:1-bookworm AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys (vendored): it needs a C toolchain and make.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p logbus-ingest -p logbus-query-api -p logbus-gen \
        -p logbus-bridge \
    && mkdir -p /out \
    && cp target/release/logbus-ingest target/release/logbus-gen target/release/logbus-query-api \
        target/release/logbus-bridge /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 logbus
USER logbus
ENTRYPOINT ["/usr/bin/tini", "--"]

FROM runtime AS ingest
COPY --from=build /out/logbus-ingest /usr/local/bin/
EXPOSE 9464
CMD ["logbus-ingest"]

FROM runtime AS query-api
COPY --from=build /out/logbus-query-api /usr/local/bin/
EXPOSE 3000
CMD ["logbus-query-api"]

FROM runtime AS gen
COPY --from=build /out/logbus-gen /usr/local/bin/
CMD ["logbus-gen"]

FROM runtime AS bridge
COPY --from=build /out/logbus-bridge /usr/local/bin/
USER root
RUN mkdir -p /var/lib/logbus-bridge && chown logbus /var/lib/logbus-bridge
USER logbus
CMD ["logbus-bridge", "run"]
