# tracelab — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
# Debug info for tests costs minutes on 2 cores; line tables keep backtraces readable.
export CARGO_TERM_COLOR ?= auto

.PHONY: demo test build viewer screenshots lint fmt clippy clean-data help

help:
	@echo "make demo   - build (release) and run the whole platform locally, no Docker"
	@echo "make test   - run every test (unit, integration, end-to-end)"
	@echo "make build  - build every binary (debug)"
	@echo "make lint   - rustfmt check + clippy with warnings denied"
	@echo "make viewer - build the trace viewer's browser bundle (wasm, JS, CSS) into target/site"
	@echo "make screenshots - regenerate docs/images/*.png from the viewer in headless Chromium"

## Runs the whole platform: collector, four services, embedded Kafka (MockCluster), SQLite.
demo: viewer
	$(CARGO) build --release --workspace --bins
	./target/release/tracelab up $(ARGS)

## Every test of the workspace. Binaries are built first: the end-to-end tests start them.
test: viewer
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --workspace --bins

## The viewer's browser side: wasm32 build + wasm-bindgen into target/site (served by `viewer`).
viewer:
	./viewer/scripts/build-assets.sh

## Screenshots of the search and trace pages for the README, taken by the browser tests.
screenshots: viewer
	$(CARGO) build --workspace --bins
	TRACELAB_SCREENSHOTS=$(CURDIR)/docs/images $(CARGO) test -p viewer --test browser

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-data:
	rm -rf data
