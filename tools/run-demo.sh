#!/usr/bin/env bash
# The main job (`make run`, README): a whole inferno deployment on loopback.
#   1. bin/inferno-kafka-mock   (librdkafka's mock cluster, topics created)
#   2. redis-server             (on a free port, no persistence)
#   3. bin/inferno-worker       on ../shared/models/stories260K.gguf when present,
#                               else a random tiny model written by bin/inferno-model
#   4. bin/inferno-loadgen      sends a few prompts on the three priority topics and
#                               shows the streamed answers, then a short benchmark
#   5. bin/inferno-gateway      the OpenAI API in front of it all; the demo ends with a
#                               curl streaming chat completion through it
# and shows the raw reply stream and the worker's heartbeat with redis-cli.
# The worker runs with -X fetch.wait.max.ms=5: librdkafka's mock cluster answers
# an empty fetch only after fetch.wait.max.ms, so the worker's default of 100 ms
# (right for real brokers, which answer as soon as data arrives) would add up to
# 100 ms to every request here.
# Everything started here is stopped by PID on exit (also on Ctrl-C).
# Environment: INFERNO_MODEL (model file), DEMO_REQUESTS (benchmark size, 24),
# DEMO_KEEP=1 (keep the work dir with the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/inferno-demo.XXXXXX)
pids=()
stop_pid() { # PID NAME: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "($2 did not stop: SIGKILL)"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i=${#pids[@]}-1; i>=0; i--)); do stop_pid "${pids[$i]}" "pid ${pids[$i]}"; done
  if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for b in inferno-kafka-mock inferno-worker inferno-loadgen inferno-model inferno-gateway inferno-gguf-template; do
  [ -x "bin/$b" ] || { echo "bin/$b missing: run make first" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }

model=${INFERNO_MODEL:-../shared/models/stories260K.gguf}
if [ ! -f "$model" ]; then
  model=build/models/random-tiny.gguf
  mkdir -p build/models
  [ -f "$model" ] || bin/inferno-model random "$model" --preset tiny --type f32 --seed 1 >/dev/null
  echo "(../shared absent: using a random-weights model, the answers are gibberish)"
fi

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 30000))
}
wait_for() { # SECONDS COMMAND...: retry until it succeeds
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

echo "== 1. Kafka (mock cluster)"
bin/inferno-kafka-mock --partitions 3 --bootstrap-file "$work/bootstrap" >"$work/kafka.log" 2>&1 &
pids+=($!)
wait_for 15 test -s "$work/bootstrap" || { echo "kafka mock did not start" >&2; cat "$work/kafka.log"; exit 1; }
brokers=$(head -1 "$work/bootstrap")
echo "   bootstrap $brokers, topics inferno.requests.{high,normal,low,dlq}"

echo "== 2. Redis"
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
rcli() { redis-cli -p "$port" "$@"; }
wait_for 10 rcli ping || { echo "redis-server did not start" >&2; cat "$work/redis.log"; exit 1; }
redis="redis://127.0.0.1:$port"
echo "   $redis"

# the tiny model has no chat template: the demo serves a copy with a simple one,
# so /v1/chat/completions has something to render (same weights, same answers)
model_name=$(basename "$model" .gguf)
printf '%s' "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}" >"$work/chat.jinja"
bin/inferno-gguf-template "$model" "$work/model-chat.gguf" "$work/chat.jinja"
echo "== 3. Worker on $model (as model id $model_name, with a chat template)"
metrics_port=$(free_port)
bin/inferno-worker --model "$work/model-chat.gguf" --model-name "$model_name" --brokers "$brokers" --redis "$redis" \
  --worker-id demo-worker -X fetch.wait.max.ms=5 \
  --threads 1 --heartbeat-ms 1000 --metrics-addr "127.0.0.1:$metrics_port" --log-format plain \
  >"$work/worker.log" 2>&1 &
worker_pid=$!
pids+=($worker_pid)
ready() { [ "$(rcli HGET inferno:worker:demo-worker status)" = ready ]; }
wait_for 60 ready || { echo "worker did not become ready" >&2; cat "$work/worker.log"; exit 1; }
echo "   ready (pid $worker_pid; log $work/worker.log; metrics http://127.0.0.1:$metrics_port/metrics)"

echo
echo "== 4. A few prompts, one per priority topic (greedy, streamed answers)"
i=0
for spec in "high:Once upon a time" "normal:The little dog" "low:Lily wanted to"; do
  prio=${spec%%:*} prompt=${spec#*:}
  case $prio in high) mix=1:0:0;; normal) mix=0:1:0;; *) mix=0:0:1;; esac
  bin/inferno-loadgen --brokers "$brokers" --redis "$redis" --requests 1 --concurrency 1 \
    --prompt "$prompt" --max-tokens 48 --priority-mix "$mix" --id-prefix "demo-$i" --show --timeout-s 60 |
    grep '^\[' || true
  i=$((i + 1))
done

echo
echo "== The raw reply stream of demo-0-0 (redis-cli XRANGE inferno:out:demo-0-0 - +), first entries"
rcli XRANGE inferno:out:demo-0-0 - + | head -24
echo "   ..."
rcli XREVRANGE inferno:out:demo-0-0 + - COUNT 1

echo
echo "== 5. A short benchmark: ${DEMO_REQUESTS:-24} requests, 4 at a time, mix high:normal:low = 1:2:3"
bin/inferno-loadgen --brokers "$brokers" --redis "$redis" --requests "${DEMO_REQUESTS:-24}" --concurrency 4 \
  --prompt-tokens 16 --max-tokens 32 --priority-mix 1:2:3 --id-prefix demo-bench --timeout-s 120

echo
echo "== The worker's heartbeat (HGETALL inferno:worker:demo-worker)"
rcli HGETALL inferno:worker:demo-worker | paste - - | head -30

echo
echo "== 6. The OpenAI API: bin/inferno-gateway in front of the queue"
gw_port=$(free_port)
bin/inferno-gateway --brokers "$brokers" --redis "$redis" --listen "127.0.0.1:$gw_port" --workers-poll-ms 200 \
  >"$work/gateway.out" 2>"$work/gateway.log" &
pids+=($!)
wait_for 30 curl -sf "http://127.0.0.1:$gw_port/readyz" || { echo "gateway not ready" >&2; cat "$work/gateway.log"; exit 1; }
echo "   http://127.0.0.1:$gw_port (log $work/gateway.log)"
echo "\$ curl -s http://127.0.0.1:$gw_port/v1/models"
curl -s "http://127.0.0.1:$gw_port/v1/models"
echo "\$ curl -s http://127.0.0.1:$gw_port/v1/completions -d '{\"model\":\"$model_name\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}'"
curl -s "http://127.0.0.1:$gw_port/v1/completions" \
  -d "{\"model\":\"$model_name\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}"
echo
echo "\$ curl -sN http://127.0.0.1:$gw_port/v1/chat/completions -d '{\"model\":\"$model_name\",\"stream\":true,\"messages\":[...]}'"
curl -sN "http://127.0.0.1:$gw_port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\":\"$model_name\",\"stream\":true,\"max_tokens\":32,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat.\"}]}" | head -c 4000
echo

echo
echo "== 7. Stopping (SIGTERM: the worker drains, commits, removes its heartbeat)"
kill -TERM "$worker_pid"
rc=0
wait "$worker_pid" || rc=$?
echo "   worker exit status $rc; heartbeat key exists: $(rcli EXISTS inferno:worker:demo-worker)"
tail -3 "$work/worker.log"
