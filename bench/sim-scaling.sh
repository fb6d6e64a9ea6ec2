#!/usr/bin/env bash
# The simulated engine's xP1D scaling on this machine (docs/performance.md, "Simulated xP1D").
#
# For each reference shape P:R (P prefill instances of TP16, one decode instance of R ranks with
# MTP 1 and 60 sequences a rank at most, as cluster-config/topologies/18p1d-ep144.yaml), this
# writes a topology of engine: sim, brings it up with duet.jar, offers the same load per decode
# rank with bench.jar http-load, and brings it down. So that this machine carries the same real
# load for every shape, simulated time runs R/4 times slower (sim time-scale R/4) and the rate
# of requests is the same: every rank then holds the same number of sequences. Simulated
# figures are the measured ones divided by the time scale (times it for throughput).
#
#   bench/sim-scaling.sh [OUT_DIR] [SHAPES]        # default: target/sim-scaling "1:16 2:16 4:32 8:64 18:144"
#
# Prints, per shape: seconds from up to every instance and rank serving, then http-load's
# report; writes OUT_DIR/<shape>.json (http-load's figures), <shape>.yaml, <shape>.up.
# Environment: REQUESTS (default 1000), RATE (requests/s, default 10), MAX_TOKENS (default 64),
# PORT_SHIFT (added to every port, default 0: the shipped files' 5701, 6100, 7000, 8100, 9100).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/sim-scaling}
shapes=${2:-"1:16 2:16 4:32 8:64 18:144"}
requests=${REQUESTS:-1000}
rate=${RATE:-10}
max_tokens=${MAX_TOKENS:-64}
shift_=${PORT_SHIFT:-0}
mkdir -p "$out"
prompts=$out/prompts.txt
# prompts of 200 to 1000 bytes (the simulated engine's tokens are bytes), the same every run
awk 'BEGIN { srand(1); split("the of and to in is that for it as was with be by on not he this are or", w);
  for (i = 0; i < 500; i++) { n = 200 + int(rand() * 800); s = "";
    while (length(s) < n) s = s w[1 + int(rand() * 20)] " "; print substr(s, 1, n) } }' > "$prompts"

topology() { # P R SCALE
  local p=$1 r=$2 scale=$3 i
  cat <<YAML
# Written by bench/sim-scaling.sh: ${p}P1D of the reference's shape on the simulated engine.
cluster:
  name: duet-sim-${p}p1d
  heartbeat-millis: 1000
  heartbeat-timeout-millis: 10000
engine: sim
sim:
  parameters: {time-scale: "$scale"}
model: {served-name: deepseek}
prefill: {tp: 16, max-batch-tokens: 30000, kv-cache-mb: 16, lease-seconds: 120}
decode: {max-num-seqs: 60, num-speculative-tokens: 1, kv-cache-mb: 4}
instances:
  c0: {role: proxy, host: 127.0.0.1, cluster-port: $((5701 + shift_)),
       proxy: {port: $((7000 + shift_)), decode-rank-cap: 61, queue-size: 16384}}
YAML
  for ((i = 0; i < p; i++)); do
    echo "  p$i: {role: prefill, host: 127.0.0.1, cluster-port: $((5702 + shift_ + i)), prefill: {kv-port: $((6100 + shift_ + i)), http-port: $((8100 + shift_ + i))}}"
  done
  # DeepSeek-V3's 256 routed experts, in redundant slots where EP does not divide them (EP144: 288)
  local slots=$(( (256 + r - 1) / r * r ))
  echo "  d0: {role: decode, host: 127.0.0.1, cluster-port: $((5702 + shift_ + p)), decode: {dp: $r, ep: $r, expert-slots: $slots, http-port: $((9100 + shift_))}}"
}

for shape in $shapes; do
  p=${shape%%:*} r=${shape##*:}
  scale=$(awk -v r="$r" 'BEGIN { print r / 4 }')
  file=$out/${p}p1d.yaml
  topology "$p" "$r" "$scale" > "$file"
  start=$(date +%s.%N)
  java -jar deploy/target/duet.jar up "$file" --timeout 600 > "$out/${p}p1d.up" 2>&1 \
    || { cat "$out/${p}p1d.up"; exit 1; }
  up=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  echo "== ${p}P1D, $r decode ranks, time scale $scale: up in $up s"
  java -jar bench/target/bench.jar http-load --url "http://127.0.0.1:$((7000 + shift_))" --prompts "$prompts" --rate "$rate" \
    --requests "$requests" --max-tokens "$max_tokens" --max-concurrency $((4 * r)) \
    --json "$out/${p}p1d.json" 2>/dev/null | tr '\r' '\n' | sed -n '/^http-load/,$p' || true
  java -jar deploy/target/duet.jar down "$file" > /dev/null 2>&1 || true
done
