#!/usr/bin/env bash
# `make sampling-lab`: starts the stack with the lab's collector config
# (collector/config/sampling-lab.yaml: keep everything + four strategies side by side), runs
# `loadgen sampling-lab` against it, prints the table, and stops the stack.
#
# Knobs (environment): RATE, DURATION, MIX, SEED, SUMMARY (JSON path), BIN (binary dir),
# DATA_DIR. A stack already running with the lab config (`tracelab up --sampling lab`) is used
# as it is and left running.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/release}
RATE=${RATE:-50}
DURATION=${DURATION:-60s}
MIX=${MIX:-checkout=90,payment.slow=5,payment.declined=5}
SEED=${SEED:-7}
SUMMARY=${SUMMARY:-target/sampling-lab/summary.json}
DATA_DIR=${DATA_DIR:-data/sampling-lab}
GATEWAY=http://127.0.0.1:8080
QUERY=http://127.0.0.1:16686

stores() { curl -sf --max-time 2 "$QUERY/api/v1/stores" 2>/dev/null | grep -o '"id":"[^"]*"' | wc -l; }

pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # tracelab stops its children within its grace period; bounded wait.
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap cleanup EXIT INT TERM

if curl -sf --max-time 2 "$GATEWAY/healthz" >/dev/null 2>&1; then
  if [ "$(stores)" -ge 2 ]; then
    echo "sampling-lab: using the lab stack already running at $GATEWAY"
  else
    echo "sampling-lab: a stack without the lab's stores is running at $GATEWAY (make demo?)." >&2
    echo "  Stop it, or restart it as: tracelab up --sampling lab" >&2
    exit 2
  fi
else
  mkdir -p "$DATA_DIR"
  echo "sampling-lab: starting the stack (logs in $DATA_DIR/tracelab.log)"
  "$BIN/tracelab" up --sampling lab --data-dir "$DATA_DIR" --no-smoke >"$DATA_DIR/tracelab.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do
    if curl -sf --max-time 1 "$GATEWAY/readyz" >/dev/null 2>&1 && [ "$(stores)" -ge 2 ]; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "sampling-lab: the stack exited; its log:" >&2
      tail -n 40 "$DATA_DIR/tracelab.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

"$BIN/loadgen" sampling-lab --target "$GATEWAY" --query "$QUERY" \
  --rate "$RATE" --duration "$DURATION" --mix "$MIX" --seed "$SEED" --summary "$SUMMARY"
