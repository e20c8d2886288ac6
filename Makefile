# tracelab — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
# Debug info for tests costs minutes on 2 cores; line tables keep backtraces readable.
export CARGO_TERM_COLOR ?= auto

.PHONY: demo test build lint fmt clippy clean-data help

help:
	@echo "make demo   - build (release) and run the whole platform locally, no Docker"
	@echo "make test   - run every test (unit, integration, end-to-end)"
	@echo "make build  - build every binary (debug)"
	@echo "make lint   - rustfmt check + clippy with warnings denied"

## Runs the whole platform: collector, four services, embedded Kafka (MockCluster), SQLite.
demo:
	$(CARGO) build --release --workspace --bins
	./target/release/tracelab up $(ARGS)

## Every test of the workspace. Binaries are built first: the end-to-end tests start them.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --workspace --bins

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-data:
	rm -rf data
