# syntax=docker/dockerfile:1
# One image for every tracelab process (collector, the four services, card-provider, viewer,
# loadgen, the `tracelab` CLI); docker-compose.yml and k8s/ choose the binary with `command:`.
#
#   docker build -t tracelab:0.1.0 .        (docker compose up builds it too)
#
# Stages: chef (toolchain + cargo-chef + wasm-bindgen-cli) → planner (the dependency recipe) →
# builder (dependencies cooked in their own layer, so a source change rebuilds only tracelab's
# crates) → runtime (Debian slim, non-root, no compiler, no shell tools beyond the base image).
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:12.11-slim

FROM ${RUST_IMAGE} AS chef
# rdkafka builds its bundled librdkafka (C, make) and links zlib; SQLite is bundled by sqlx;
# tikv-jemalloc-sys builds jemalloc (C, make) for the collector.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
# rust-toolchain.toml names rustfmt and clippy as well; the image's toolchain is the same release,
# and building needs neither, so pin it instead of letting rustup fetch components.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never
RUN rustup target add wasm32-unknown-unknown \
 && cargo install cargo-chef --version 0.1.78 --locked \
 && cargo install wasm-bindgen-cli --version 0.2.130
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --workspace --recipe-path recipe.json \
 && cargo chef cook --profile wasm-release --target wasm32-unknown-unknown \
      --no-default-features --features hydrate -p viewer --recipe-path recipe.json
COPY . .
RUN cargo build --release --workspace --bins \
 && ./viewer/scripts/build-assets.sh

FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10001 tracelab \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tracelab --no-create-home tracelab \
 && mkdir -p /var/lib/tracelab/collector /var/lib/tracelab/loadgen /var/lib/tracelab/data \
 && chown -R 10001:10001 /var/lib/tracelab
COPY --from=builder /src/target/release/collector /usr/local/bin/collector
COPY --from=builder /src/target/release/api-gateway /usr/local/bin/api-gateway
COPY --from=builder /src/target/release/order-service /usr/local/bin/order-service
COPY --from=builder /src/target/release/payment-service /usr/local/bin/payment-service
COPY --from=builder /src/target/release/inventory-service /usr/local/bin/inventory-service
COPY --from=builder /src/target/release/card-provider /usr/local/bin/card-provider
COPY --from=builder /src/target/release/viewer /usr/local/bin/viewer
COPY --from=builder /src/target/release/loadgen /usr/local/bin/loadgen
COPY --from=builder /src/target/release/tracelab /usr/local/bin/tracelab
COPY --from=builder /src/target/site /usr/share/tracelab/site
# The shipped collector configs, for running the image without a mounted config directory
# (compose mounts ./collector/config over this; k8s mounts ConfigMaps).
COPY collector/config /etc/tracelab/collector
ENV LEPTOS_SITE_ROOT=/usr/share/tracelab/site \
    COLLECTOR_CONFIG=/etc/tracelab/collector/default.yaml
# Named volumes mounted here start with this ownership; services fall back to SQLite under data/.
WORKDIR /var/lib/tracelab
USER 10001:10001
EXPOSE 3000 4317 4318 8080 8081 8082 8083 8090 8889 13133 16686
CMD ["tracelab", "--help"]
