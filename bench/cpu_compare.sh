#!/usr/bin/env bash
# Gyre against llama.cpp on the CPU, side by side, on the 100m bench model (random weights):
#   gyre in-process (no HTTP), gyre serve (HTTP, /v1/completions streaming), llama.cpp
#   (node-llama-cpp, one context with N sequences) - same threads, workload, seed and N.
# Prints the table, the ratios (Gyre/llama.cpp, HTTP overhead) and the goals; writes
# bench/results/cpu-<date>.json and .svg/.png beside it. About 11 minutes on 2 quiet cores.
# Run it on a quiet machine: llama.cpp's threads spin at barriers and collapse under load.
#
# Usage: bench/cpu_compare.sh [OUT.json]
# Env:   DURATION (s per N, 30)  CONCURRENCY (1,2,4,8,16)  THREADS (nproc)  SEED (0)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/cpu-$(date -u +%Y%m%d).json}
duration=${DURATION:-30}
concurrency=${CONCURRENCY:-1,2,4,8,16}
threads=${THREADS:-$(nproc)}
seed=${SEED:-0}
peer=bench/peers/llama-cpp
t0=$(date +%s)

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "cpu_compare: warning: load average $load - other work will skew the numbers (llama.cpp most)" >&2
fi
[ -d "$peer/node_modules/node-llama-cpp" ] || (cd "$peer" && npm ci --no-audit --no-fund)
npm run --silent build:ts

work=$(mktemp -d)
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

gyre() { node dist/cli/main.js "$@"; }
gyre make-model --shape 100m --dtype f32 --seed 0 --out "$work/100m"
gyre convert --to gguf --model "$work/100m" --out "$work/100m.gguf" --dtype f32
common=(--model "$work/100m" --concurrency "$concurrency" --duration "$duration" --warmup 2 --seed "$seed" --threads "$threads")

echo "== gyre in-process" >&2
gyre bench --in-process "${common[@]}" --out "$work/in-process.json" >/dev/null

echo "== gyre serve" >&2
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
node dist/cli/main.js serve --model "$work/100m" --host 127.0.0.1 --port "$port" --threads "$threads" --backend cpu >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 240); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$port/ping" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }
gyre bench --url "http://127.0.0.1:$port" "${common[@]}" --out "$work/served.json" >/dev/null
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=

echo "== llama.cpp" >&2
node "$peer/bench.mjs" --gguf "$work/100m.gguf" "${common[@]}" --out "$work/llama-cpp.json" >/dev/null

echo "== result" >&2
gyre bench --merge "$work/in-process.json,$work/served.json,$work/llama-cpp.json" "${common[@]}" --out "$out"
echo "cpu_compare: $(( $(date +%s) - t0 )) s in all" >&2
