#!/usr/bin/env bash
# Measures the local stack: cold start to first trace queryable (printed by `tracelab up`), and the
# summed RSS of every process of the stack (launcher with its MockCluster, reaper, collector,
# services) when idle and after N checkouts sent one after another to 127.0.0.1.
#   N=1000 BIN_DIR=target/release lab/scripts/footprint.sh
set -euo pipefail
N=${N:-1000}
BIN_DIR=${BIN_DIR:-target/release}
WORK=$(mktemp -d)
"$BIN_DIR/tracelab" up --ports auto --data-dir "$WORK/data" --raw-logs >"$WORK/up.log" 2>&1 &
UP=$!
cleanup() { kill -TERM "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for _ in $(seq 1 900); do
  grep -q "first trace queryable" "$WORK/up.log" && break
  kill -0 "$UP" 2>/dev/null || { cat "$WORK/up.log"; exit 1; }
  sleep 0.1
done
grep -m1 "first trace queryable" "$WORK/up.log" || { cat "$WORK/up.log"; exit 1; }
GATEWAY=$(grep -m1 -o "gateway        http://[0-9.:]*" "$WORK/up.log" | awk '{print $2}')

pids() {
  echo "$UP"
  pgrep -P "$UP" || true   # reaper and the children
}
rss_mib() {
  local total=0 kb
  for p in $(pids); do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "scale=1; $total / 1024" | bc
}
per_process() {
  for p in $(pids); do
    printf '  %-22s %6s MiB\n' "$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $1" "$2}' | sed 's|.*/||')" \
      "$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$p/status")"
  done
}

sleep 3 # let the start-up checkout's telemetry settle
echo "idle: $(rss_mib) MiB summed RSS"
per_process
BODY='{"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}'
start=$(date +%s.%N)
for _ in $(seq 1 "$N"); do
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -X POST "$GATEWAY/orders" \
    -H 'content-type: application/json' -d "$BODY"
done | sort | uniq -c | sed 's/^/  status /'
end=$(date +%s.%N)
echo "$N checkouts in $(echo "$end - $start" | bc) s"
sleep 3 # let the exporters flush the last batches
echo "after $N checkouts: $(rss_mib) MiB summed RSS"
per_process
