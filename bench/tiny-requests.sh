#!/usr/bin/env bash
# Tiny completions through the embedded 1P1D (docs/performance.md, "Tiny requests"): what a
# request costs outside the model.
#
#   bench/tiny-requests.sh [PORT] [ROUNDS]        # default: 7390, 1
#
# Starts proxy-service.jar (JAR, default proxy-service/target/proxy-service.jar) on aidreams260K
# with a cluster of its own, warms it with 15 s of wrk at 16 tokens then 15 s at 1, and per round:
#   - the probe: GET /v1/models with wrk -t2 -c64 for 3 s, the machine's speed at that moment
#     (a shared machine's can vary by 2x from minute to minute; read figures with their probe);
#   - for max_tokens 1 and 16, wrk -t2 -c16 for 10 s of {"prompt":"how are you?",
#     "temperature":0}: requests/s, and CPU per request (the proxy's launcher and server JVMs,
#     from /proc/PID/stat; wrk itself runs on the same cores and is not counted).
#   - with THREADS=1, CPU per request of each group of the server JVM's threads as well (from
#     /proc/PID/task/*/stat; thread names without their trailing number: engine threads,
#     compute workers, event loops, JIT compilers, ...).
# With JAR_B set, a second server (JAR_B, JVM_FLAGS_B, FLAGS_B) runs beside the first on PORT+1,
# warmed alike, and every measurement is taken on A then at once on B: each pair of runs sees
# the machine's speed of the same half minute, which sequential runs of two builds do not.
# Environment: JAR, JVM_FLAGS (JVM options for both JVMs of a server), FLAGS (more proxy flags),
# THREADS, JAR_B, JVM_FLAGS_B, FLAGS_B.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-7390}
rounds=${2:-1}
models=../shared/models
for tool in wrk curl bc; do
  command -v $tool >/dev/null || { echo "$tool is needed (apt-get install -y $tool)" >&2; exit 2; }
done
work=$(mktemp -d)
# The servers' labels, each with its port.
declare -A ports=([A]=$port)
[ -n "${JAR_B:-}" ] && ports[B]=$((port + 1))
name() { echo "tiny-requests-${ports[$1]}"; }
trap 'pkill -f "cluster-name tiny-requests-$port" || true; pkill -f "cluster-name tiny-requests-$((port + 1))" || true
  sleep 2; pkill -9 -f "cluster-name tiny-requests-$port" || true
  pkill -9 -f "cluster-name tiny-requests-$((port + 1))" || true; rm -rf "$work"' EXIT
# start LABEL JAR JVM_FLAGS FLAGS
start() {
  # shellcheck disable=SC2086
  java $3 -jar "$2" --served-model-name m --model $models/aidreams260K.bin \
    --tokenizer $models/aidreams260K.tok512.bin --port "${ports[$1]}" --cluster-name "$(name "$1")" \
    $4 > "$work/proxy-$1.log" 2>&1 &
}
start A "${JAR:-proxy-service/target/proxy-service.jar}" "${JVM_FLAGS:-}" "${FLAGS:-}"
[ -n "${JAR_B:-}" ] && start B "$JAR_B" "${JVM_FLAGS_B:-}" "${FLAGS_B:-}"
for label in "${!ports[@]}"; do
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:${ports[$label]}/v1/models" >/dev/null && break
    sleep 1
  done
done
url() { echo "http://127.0.0.1:${ports[$1]}/v1/completions"; }
for n in 1 16; do
  cat > "$work/$n.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"m","prompt":"how are you?","max_tokens":$n,"temperature":0}'
LUA
done
# The server JVM: the launcher's child (the launcher relaunches java with the module flags).
server_pid() {
  for p in $(pgrep -f "cluster-name $(name "$1")"); do
    [ "$(ps -o ppid= -p "$p" | tr -d ' ')" != 1 ] && grep -q relaunch=false "/proc/$p/cmdline" \
      && echo "$p"
  done | tail -1
}
# "thread-group ticks" lines of the server JVM, summed over threads of one name but its number.
thread_ticks() {
  local pid=$1
  for t in /proc/"$pid"/task/*; do
    echo "$(sed 's/[0-9]*$//; s/ /_/g' "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
cpu_ticks() {
  for p in $(pgrep -f "cluster-name $(name "$1")"); do awk '{print $14 + $15}' "/proc/$p/stat"; done \
    | paste -sd+ | bc
}
ticks_per_second=$(getconf CLK_TCK)
# measure LABEL N: one 10 s run of max_tokens N on the server LABEL, and its line(s).
measure() {
  local label=$1 n=$2 before after out requests rate failed cpu
  [ -n "${THREADS:-}" ] && thread_ticks "$(server_pid "$label")" > "$work/threads.before"
  before=$(cpu_ticks "$label")
  out=$(wrk -t2 -c16 -d10s -s "$work/$n.lua" "$(url "$label")")
  after=$(cpu_ticks "$label")
  [ -n "${THREADS:-}" ] && thread_ticks "$(server_pid "$label")" > "$work/threads.after"
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  failed=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  cpu=$(echo "scale=3; ($after - $before) * 1000 / $ticks_per_second / $requests" | bc)
  echo "  ${JAR_B:+$label }max_tokens $n: $rate req/s, $requests requests, ${failed:-0} not 2xx," \
    "CPU $cpu ms per request, load $(cut -d' ' -f1 /proc/loadavg)"
  if [ -n "${THREADS:-}" ]; then
    join "$work/threads.before" "$work/threads.after" | awk -v r="$requests" \
      -v hz="$ticks_per_second" '{ms = ($3 - $2) * 1000 / hz / r; if (ms >= 0.001)
        printf "    %-28s %.3f ms per request\n", $1, ms}' | sort -k2 -nr
  fi
}
echo "warming up: 15 s at max_tokens 16, 15 s at 1${JAR_B:+, each server}" >&2
for label in $(printf '%s\n' "${!ports[@]}" | sort); do
  wrk -t2 -c16 -d15s -s "$work/16.lua" "$(url "$label")" >/dev/null
  wrk -t2 -c16 -d15s -s "$work/1.lua" "$(url "$label")" >/dev/null
done
for round in $(seq "$rounds"); do
  probe=$(wrk -t2 -c64 -d3s "http://127.0.0.1:$port/v1/models" | awk '/Requests\/sec/ {print $2}')
  echo "round $round: probe GET /v1/models $probe req/s"
  for n in 1 16; do
    for label in $(printf '%s\n' "${!ports[@]}" | sort); do
      measure "$label" "$n"
    done
  done
done
