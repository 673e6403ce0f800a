#!/usr/bin/env bash
# Queue overhead through the embedded deployment (`make bench` runs it after
# the engine tables): the mock Kafka cluster, a redis-server and one worker
# on stories260K (or a random tiny model), then
#   1. the queue path alone: inferno-loadgen, 1 request at a time; client
#      TTFT (produce -> first token entry read back) beside the worker's own
#      ttft_ms (arrival -> first token, from the done entries): the
#      difference is what Kafka (fetch.wait.max.ms) and Redis add;
#   2. the gateway: 100 concurrent streaming completions straight to Kafka
#      (inferno-loadgen --concurrency 100) and the same through
#      inferno-gateway (tests/gateway/load.mjs, Node's http client), in
#      alternating rounds: TTFB p50 of each and the difference.
# The worker gets -X fetch.wait.max.ms=$FETCH_WAIT_MS (default 5): the
# mock cluster answers an empty fetch only after fetch.wait.max.ms, so the
# worker's default of 100 ms would add up to 100 ms to every request that
# arrives while the consumer waits; real brokers answer when data arrives.
# Environment: INFERNO_MODEL, BENCH_QUEUE_REQUESTS (40), BENCH_QUEUE_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/inferno-bq.XXXXXX)
pids=()
cleanup() {
  local i
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { local end=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
model=${INFERNO_MODEL:-../shared/models/stories260K.gguf}
if [ ! -f "$model" ]; then
  model=build/models/random-tiny.gguf; mkdir -p build/models
  [ -f "$model" ] || bin/inferno-model random "$model" --preset tiny --type f32 --seed 1 >/dev/null
fi
name=$(basename "$model" .gguf)
fw=${FETCH_WAIT_MS:-5}
n=${BENCH_QUEUE_REQUESTS:-40}
rounds=${BENCH_QUEUE_ROUNDS:-3}

bin/inferno-kafka-mock --partitions 3 --bootstrap-file "$work/bs" >"$work/kafka.log" 2>&1 & pids+=($!)
wait_for 15 test -s "$work/bs"; brokers=$(head -1 "$work/bs")
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 & pids+=($!)
wait_for 10 redis-cli -p "$port" ping
redis=redis://127.0.0.1:$port
bin/inferno-worker --model "$model" --brokers "$brokers" --redis "$redis" --worker-id bq-worker --threads 1 \
  --heartbeat-ms 500 --metrics-addr off --log-format plain -X fetch.wait.max.ms="$fw" ${BENCH_WORKER_X:+-X "$BENCH_WORKER_X"} >"$work/worker.log" 2>&1 & pids+=($!)
ready() { [ "$(redis-cli -p "$port" HGET inferno:worker:bq-worker status)" = ready ]; }
wait_for 60 ready
bin/inferno-gateway --brokers "$brokers" --redis "$redis" --listen 127.0.0.1:0 --workers-poll-ms 200 \
  >"$work/gw.out" 2>"$work/gw.log" & gw=$!; pids+=($gw)
wait_for 15 grep -q listening "$work/gw.out"
gport=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/gw.out")
wait_for 15 curl -sf "127.0.0.1:$gport/readyz"

echo "== queue overhead through the mock (fetch.wait.max.ms=$fw), $n requests one at a time, $name"
bin/inferno-loadgen --brokers "$brokers" --redis "$redis" --concurrency 1 --requests "$n" --prompt-tokens 8 \
  --max-tokens 8 --id-prefix bq-seq --json >"$work/seq.json" || true
wttft=$(for i in $(seq 0 $((n - 1))); do redis-cli -p "$port" --raw XREVRANGE "inferno:out:bq-seq-$i" + - COUNT 1 |
          awk 'p{print; exit} $0=="ttft_ms"{p=1}'; done | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
python3 - "$work/seq.json" "$wttft" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); c = j["priorities"]["all"]["ttft_ms"]["p50"]; w = float(sys.argv[2])
print(f"client TTFT p50 {c:.2f} ms, worker ttft_ms p50 {w:.2f} ms: the queue adds {c - w:.2f} ms")
PY

echo "== TTFB at 100 concurrent streams: straight to Kafka vs through inferno-gateway ($rounds rounds)"
for r in $(seq "$rounds"); do
  bin/inferno-loadgen --brokers "$brokers" --redis "$redis" --concurrency 100 --requests 100 --prompt-tokens 8 \
    --max-tokens 8 --ignore-eos --id-prefix "bq-k$r" --json | python3 -c \
    'import json,sys; j=json.load(sys.stdin); print("kafka", j["priorities"]["all"]["ttft_ms"]["p50"], j["ok"])' >>"$work/cmp.txt"
  node tests/gateway/load.mjs 127.0.0.1 "$gport" 100 8 "$name" "$gw" | python3 -c \
    'import json,sys; j=json.load(sys.stdin); print("gateway", j["ttfb_ms"]["p50"], j["ok"])' >>"$work/cmp.txt"
done
python3 - "$work/cmp.txt" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
k = [float(r[1]) for r in rows if r[0] == "kafka"]; g = [float(r[1]) for r in rows if r[0] == "gateway"]
for name, v in (("straight to Kafka (loadgen)", k), ("through the gateway (Node http)", g)):
    print(f"  {name:34s} TTFB p50 per round: " + " ".join(f"{x:.1f}" for x in v) + f"  median {statistics.median(v):.1f} ms")
print(f"  gateway overhead (median of p50s): {statistics.median(g) - statistics.median(k):+.1f} ms")
PY
