#!/usr/bin/env bash
# Memory soak (`make soak`, docs/operations.md "Memory soak"): does the
# worker's resident memory level off under sustained load?
#   1. bin/inferno-kafka-mock   (librdkafka's mock cluster, topics created)
#   2. redis-server             (free loopback port, no persistence)
#   3. bin/inferno-worker       on ../shared/models/stories260K.gguf (else a
#                               random tiny model written by bin/inferno-model)
#   4. SOAK_ROUNDS rounds of SOAK_REQUESTS requests with bin/inferno-loadgen;
#      after each round one table row: the worker's VmRSS from
#      /proc/PID/status and the worker's own memory metrics (RSS, heap bytes
#      in use and heap bytes free inside malloc, from /metrics).
# Verdict: RSS after round SOAK_WARMUP is the baseline; every later round
# must stay within SOAK_TOLERANCE_PCT % of it ("flat"), else "GROWING".
# Heap in use flat while RSS grows means allocator fragmentation/retention,
# heap in use growing means the program keeps memory (a leak or a cache).
# Everything started here is stopped by PID on exit (also on Ctrl-C).
#
# Environment (defaults): SOAK_ROUNDS 20, SOAK_REQUESTS 1000,
# SOAK_CONCURRENCY 16, SOAK_PROMPT_TOKENS 32, SOAK_MAX_TOKENS 32,
# SOAK_WARMUP 3, SOAK_TOLERANCE_PCT 5, SOAK_WORKER_ARGS (extra worker
# flags), INFERNO_MODEL, SOAK_KEEP=1 (keep the work dir with the logs).
# MALLOC_* variables reach the worker unchanged (e.g. MALLOC_ARENA_MAX=8 to
# compare). Exit status: 0 flat, 1 growing or failed requests, 2 setup.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${SOAK_ROUNDS:-20}
per_round=${SOAK_REQUESTS:-1000}
conc=${SOAK_CONCURRENCY:-16}
ptok=${SOAK_PROMPT_TOKENS:-32}
mtok=${SOAK_MAX_TOKENS:-32}
warmup=${SOAK_WARMUP:-3}
tol=${SOAK_TOLERANCE_PCT:-5}
[ "$warmup" -lt "$rounds" ] || { echo "SOAK_WARMUP ($warmup) must be below SOAK_ROUNDS ($rounds)" >&2; exit 2; }

work=$(mktemp -d /tmp/inferno-soak.XXXXXX)
pids=()
stop_pid() { # PID: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i=${#pids[@]}-1; i>=0; i--)); do stop_pid "${pids[$i]}"; done
  if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for b in inferno-kafka-mock inferno-worker inferno-loadgen inferno-model; do
  [ -x "bin/$b" ] || { echo "bin/$b missing: run make first" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 2; }

model=${INFERNO_MODEL:-../shared/models/stories260K.gguf}
if [ ! -f "$model" ]; then
  model=build/models/random-tiny.gguf
  mkdir -p build/models
  [ -f "$model" ] || bin/inferno-model random "$model" --preset tiny --type f32 --seed 1 >/dev/null
fi

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 30000))
}
wait_for() { # SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}

bin/inferno-kafka-mock --partitions 3 --bootstrap-file "$work/bootstrap" >"$work/kafka.log" 2>&1 &
pids+=($!)
wait_for 15 test -s "$work/bootstrap" || { echo "kafka mock did not start" >&2; cat "$work/kafka.log"; exit 2; }
brokers=$(head -1 "$work/bootstrap")

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for 10 redis-cli -p "$port" ping || { echo "redis-server did not start" >&2; cat "$work/redis.log"; exit 2; }
redis="redis://127.0.0.1:$port"

mport=$(free_port)
# Reply streams expire 60 s after their answer, so Redis (not measured) does
# not hold 20,000 streams; --log-level warn keeps the log small.
# shellcheck disable=SC2086
bin/inferno-worker --model "$model" --brokers "$brokers" --redis "$redis" --worker-id soak-worker \
  --threads 1 --metrics-addr "127.0.0.1:$mport" --log-format plain --log-level warn --stream-expire-s 60 \
  ${SOAK_WORKER_ARGS:-} >"$work/worker.log" 2>&1 &
wpid=$!
pids+=($wpid)
ready() { curl -fsS "http://127.0.0.1:$mport/readyz"; }
wait_for 60 ready || { echo "worker did not become ready" >&2; cat "$work/worker.log"; exit 2; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$wpid/status"; }
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$wpid/status"; } # VmRSS without mapped files (libraries, model)
metric() { # NAME: its value from /metrics, or "-"
  curl -fsS "http://127.0.0.1:$mport/metrics" 2>/dev/null | awk -v n="$1" '$1 == n {v=$2} END {print (v == "" ? "-" : v)}'
}
mib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b / 1048576 }'; }
mib2() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.2f", b / 1048576 }'; } # heap: finer, to see slow drift

echo "soak: $rounds rounds x $per_round requests, concurrency $conc, prompt $ptok tokens, max_tokens $mtok"
echo "model $model; worker pid $wpid${MALLOC_ARENA_MAX:+; MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX}; extra args: ${SOAK_WORKER_ARGS:-none}"
echo "before load: VmRSS $(awk -v k="$(rss_kb)" 'BEGIN{printf "%.1f", k/1024}') MiB, RssAnon $(awk -v k="$(anon_kb)" 'BEGIN{printf "%.1f", k/1024}') MiB"
printf '%5s %8s %6s %8s %9s %10s %10s %9s %5s\n' round requests failed "rss_MiB" "anon_MiB" "rss_metric" "heap_inuse" "heap_free" "secs"
rss=() failed_total=0
for ((r=1; r<=rounds; r++)); do
  t0=$SECONDS
  out=$(bin/inferno-loadgen --brokers "$brokers" --redis "$redis" --requests "$per_round" --concurrency "$conc" \
          --prompt-tokens "$ptok" --max-tokens "$mtok" --priority-mix 1:2:3 --seed "$r" \
          --id-prefix "soak-$r" --timeout-s 120 --json 2>>"$work/loadgen.log") || true
  ok=$(printf '%s' "$out" | sed -n 's/^{"requests":[0-9]*,"ok":\([0-9]*\),.*/\1/p' | head -1)
  failed=$((per_round - ${ok:-0})) # a loadgen that could not start counts every request as failed
  failed_total=$((failed_total + failed))
  sleep 1 # let the last acknowledgements land
  k=$(rss_kb)
  rss+=("$k")
  printf '%5d %8d %6d %8.1f %9.1f %10s %10s %9s %5d\n' "$r" "$((r * per_round))" "$failed" "$(awk -v k="$k" 'BEGIN{print k/1024}')" \
    "$(awk -v k="$(anon_kb)" 'BEGIN{print k/1024}')" \
    "$(mib "$(metric process_resident_memory_bytes)")" "$(mib2 "$(metric inferno_heap_inuse_bytes)")" \
    "$(mib2 "$(metric inferno_heap_free_bytes)")" "$((SECONDS - t0))"
done

base=${rss[$((warmup - 1))]}
max=$base min=$base
for ((i=warmup; i<rounds; i++)); do
  [ "${rss[$i]}" -gt "$max" ] && max=${rss[$i]}
  [ "${rss[$i]}" -lt "$min" ] && min=${rss[$i]}
done
last=${rss[$((rounds - 1))]}
verdict=$(awk -v b="$base" -v mx="$max" -v mn="$min" -v l="$last" -v t="$tol" -v w="$warmup" 'BEGIN {
  up = (mx - b) * 100 / b; dn = (b - mn) * 100 / b;
  printf "after round %d: baseline %.1f MiB, later rounds %.1f..%.1f MiB (%+.1f%% / %+.1f%%), last %.1f MiB: ", w, b/1024, mn/1024, mx/1024, -dn, up, l/1024;
  if (up <= t && dn <= t) print "FLAT (within " t "%)"; else print "GROWING (beyond " t "%)" }')
echo "$verdict"
[ "$failed_total" -eq 0 ] || echo "$failed_total request(s) failed (see $work/loadgen.log; SOAK_KEEP=1 keeps it)"
case $verdict in *FLAT*) [ "$failed_total" -eq 0 ] && exit 0;; esac
exit 1
