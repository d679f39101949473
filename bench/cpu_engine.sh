#!/usr/bin/env bash
# CPU engine benchmark: decode speed of the model runner at batch 1 (largest fixture, 100m f32,
# f16 and f16 quantized to int8 at load; 100m f16 and int8 at batch 16), then continuous batching through the engine on 100m: aggregate tokens/s at 1, 4, 16
# and 64 concurrent sequences against the same requests run one after another (same run).
# Usage: bench/cpu_engine.sh [OUT.json]   (needs `npm run build:native` and `npm run build:ts`)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/cpu-engine-$(hostname -s)-$(date -u +%Y%m%d).json}
bin=${GYRE_BIN:-native/build/Release}
[ -x "$bin/gyre_decode_bench" ] || bin=native/build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node dist/cli/main.js make-model --shape 100m --dtype f32 --out "$work/100m-f32" >&2
node dist/cli/main.js make-model --shape 100m --dtype f16 --out "$work/100m-f16" >&2

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
{
  echo "{\"machine\": {\"cpu\": \"$cpu\", \"cores\": $(nproc), \"memory_gib\": $(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)},"
  echo " \"date\": \"$(date -u +%FT%TZ)\", \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\","
  echo " \"decode_batch1\": ["
  "$bin/gyre_decode_bench" test/fixtures/reference/llama-gqa-theta --batch 1 --prompt 16 --tokens 256
  echo ","
  "$bin/gyre_decode_bench" "$work/100m-f32" --batch 1 --prompt 32 --tokens 64
  echo ","
  "$bin/gyre_decode_bench" "$work/100m-f16" --batch 1 --prompt 32 --tokens 64
  echo ","
  "$bin/gyre_decode_bench" "$work/100m-f16" --batch 1 --prompt 32 --tokens 64 --quantization int8
  echo "],"
  echo " \"decode_batch16_100m\": ["
  "$bin/gyre_decode_bench" "$work/100m-f16" --batch 16 --prompt 32 --tokens 32
  echo ","
  "$bin/gyre_decode_bench" "$work/100m-f16" --batch 16 --prompt 32 --tokens 32 --quantization int8
  echo "],"
  echo " \"batching_100m_f32\": "
  "$bin/gyre_batch_bench" "$work/100m-f32" --prompt 32 --tokens 64 --concurrency 1,4,16,64 --out "$work/batch.json" >&2
  cat "$work/batch.json"
  echo "}"
} >"$out"
echo "wrote $out" >&2
