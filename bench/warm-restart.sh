#!/usr/bin/env bash
# Time from `duet.jar up` (the instances' start) to the first streamed token of a 1P1D, with the
# warm cache emptied first (cold) or kept from the run before (warm), e.g.
#   python3 ../shared/tools/make_checkpoint.py /tmp/m15.bin 288 768 6 6 6 32000 256
#   MODEL_PATH=/tmp/m15.bin TOKENIZER_PATH=../shared/models/tokenizer.bin \
#     bench/warm-restart.sh cold warm cold warm
# Each line: the time to the first token, how the prefill instance found the model's content
# hash, its warm-up, and the load average. Ports 21001-21007; the jars of the build tree.
# KV_CACHE_MB (default 16) sizes each engine's KV cache, for models wider than the 15M shape.
set -euo pipefail
: "${MODEL_PATH:?set MODEL_PATH (and TOKENIZER_PATH)}"
JAR=$(cd "$(dirname "$0")/.." && pwd)/deploy/target/duet.jar
WORK=$(mktemp -d /tmp/duet-warm-restart-XXXXXX)
export LOG_PATH=$WORK/logs
KV=${KV_CACHE_MB:-16}
cat > "$WORK/1p1d.yaml" <<YAML
cluster: {name: duet-warm-restart}
model: {served-name: deepseek}
prefill: {threads: 1, kv-cache-mb: $KV}
decode: {threads: 1, kv-cache-mb: $KV, max-num-seqs: 8}
instances:
  c0: {role: proxy, host: 127.0.0.1, cluster-port: 21001, proxy: {port: 21004, http-instances: 1}}
  p0: {role: prefill, host: 127.0.0.1, cluster-port: 21002, prefill: {kv-port: 21005, http-port: 21006}}
  d0: {role: decode, host: 127.0.0.1, cluster-port: 21003, decode: {dp: 1, http-port: 21007}}
YAML
trap 'java -jar "$JAR" down "$WORK/1p1d.yaml" > /dev/null 2>&1 || true' EXIT
for mode in "$@"; do
  [ "$mode" = cold ] && rm -rf "$LOG_PATH/warm-cache"
  start=$(date +%s%N)
  java -jar "$JAR" up "$WORK/1p1d.yaml" > "$WORK/up.out" 2>&1 || { cat "$WORK/up.out"; exit 1; }
  curl -s -N http://127.0.0.1:21004/v1/completions -H "Content-Type:application/json" \
    -d '{"model":"deepseek","temperature":0,"max_tokens":4,"prompt":"how are you?","stream":true}' \
    | head -c 1 > /dev/null || true  # curl ends with 23 when head has its byte
  end=$(date +%s%N)
  hash=$(grep -h -o "computed in [0-9]* ms\|from the warm cache" "$LOG_PATH/p0.log" | tail -1)
  echo "$mode: first token after $(( (end - start) / 1000000 )) ms; p0's content hash" \
    "$hash; $(grep -h -o "warmed up in [0-9]* ms" "$LOG_PATH/p0.log" | tail -1);" \
    "load $(cut -d' ' -f1 /proc/loadavg)"
  java -jar "$JAR" down "$WORK/1p1d.yaml" > /dev/null
  rm -f "$LOG_PATH"/*.log "$LOG_PATH"/*.out "$LOG_PATH"/launch.json
done
