#!/usr/bin/env bash
# Gyre against llama.cpp on the CPU (issue 19), on the 100m bench model (llama2.c's stories110M
# shape, random weights), f16 and f32, with the same threads:
#   served   gyre serve and llama.cpp's own llama-server (built from source with its native flags
#            by bench/peers/llama-cpp/build.sh; --parallel P --cont-batching), both driven over HTTP
#            through /v1/completions by the same `gyre bench --openai-url` workload (same seed, so the
#            same requests), interleaved per level: gyre N and llama-server N (which goes first
#            alternates by level), then the next N.
#   in-process (IN_PROCESS=1) Gyre's engine without HTTP (the HTTP overhead) and, as a second peer,
#            node-llama-cpp's prebuilt library in-process, at the same levels with the same seeds.
#   engines  (ENGINE=1) llama-bench pp512/tg128 (flash attention off and on) beside gyre_decode_bench
#            (--prompt 512 --tokens 1; --prompt 1 --tokens 128; median of 3), and llama-batched-bench
#            beside gyre_batch_bench (32-token prompts, 64 new, 1/4/16/64 sequences).
# Exact output lengths on llama-server: max_tokens is its alias of n_predict, and ignore_eos puts a
# -inf logit bias on every end-of-generation token (tools/server/server-schema.cpp); gyre bench
# counts the usage.completion_tokens it streams back (stream_options.include_usage). Before the run
# the script checks that against the tokens llama-server returns (/completion, return_tokens).
# Each level is its own `gyre bench` run with seed SEED+level, so every level has fresh prompts on
# both servers; `gyre bench --merge` joins the levels, records the 1-minute load average of each,
# prints Gyre / llama-server per level and the issue's goals (>= 1.5x at 1 user, >= 2x at 16).
# Writes bench/results/cpu-<date>.json (+ .svg, .png); llama.cpp's commit goes into it.
# Run it on a quiet machine: llama.cpp's threads spin at barriers and collapse under load.
#
# Usage: bench/cpu_compare.sh [OUT.json]
# Env:   DURATION (s per level, 30)  CONCURRENCY (1,2,4,8,16)  THREADS (nproc)  SEED (0)
#        DTYPES (f16,f32)  IN_PROCESS (1)  ENGINE (1)  BATCHED_LEVELS (1,4,16,64)
#        MODELS (a folder that keeps the 100m models and their GGUFs between runs; default: a temp one)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/cpu-$(date -u +%Y%m%d).json}
duration=${DURATION:-30}
concurrency=${CONCURRENCY:-1,2,4,8,16}
threads=${THREADS:-$(nproc)}
seed=${SEED:-0}
dtypes=${DTYPES:-f16,f32}
in_process=${IN_PROCESS:-1}
engine=${ENGINE:-1}
batched_levels=${BATCHED_LEVELS:-1,4,16,64}
peer=bench/peers/llama-cpp
t0=$(date +%s)

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "cpu_compare: warning: load average $load - other work will skew the numbers (llama.cpp most)" >&2
fi
llama_bin=$("$peer/build.sh")                # builds once (minutes), then only prints the folder
llama_commit=$(cat "$peer/build/commit.txt")
npm run --silent build:ts
gyre_bin=${GYRE_BIN:-native/build/Release}
[ -x "$gyre_bin/gyre_decode_bench" ] || gyre_bin=native/build
if [ "$engine" = 1 ] && [ ! -x "$gyre_bin/gyre_decode_bench" ]; then
  echo "cpu_compare: ENGINE=1 needs native/tools built: npx cmake-js compile -d native -O native/build --CDCMAKE_BUILD_TYPE=Release --CDGYRE_BUILD_TESTS=ON (or ENGINE=0)" >&2
  exit 1
fi

work=$(mktemp -d)
models=${MODELS:-$work}
mkdir -p "$models"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

gyre() { node dist/cli/main.js "$@"; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
wait_ready() {   # URL LOG PID
  for _ in $(seq 600); do
    curl -sf "$1" >/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.5
  done
  cat "$2" >&2; echo "cpu_compare: $1 never answered" >&2; exit 1
}
# llama-server must give exactly n tokens: count the ids it returns and the usage it reports.
check_lengths() {   # URL
  local n=23 got usage
  got=$(curl -sf "$1/completion" -H 'content-type: application/json' \
    -d "{\"prompt\": \"[INST] Hello [/INST]\", \"n_predict\": $n, \"ignore_eos\": true, \"temperature\": 0, \"return_tokens\": true}" | jq '.tokens | length')
  usage=$(curl -sf "$1/v1/completions" -H 'content-type: application/json' \
    -d "{\"prompt\": \"[INST] Hello [/INST]\", \"max_tokens\": $n, \"ignore_eos\": true, \"temperature\": 0}" | jq '.usage.completion_tokens')
  if [ "$got" != "$n" ] || [ "$usage" != "$n" ]; then
    echo "cpu_compare: llama-server gave $got tokens ($usage in usage) for $n asked: lengths are not exact" >&2; exit 1
  fi
}

IFS=, read -r -a levels <<<"$concurrency"
IFS=, read -r -a types <<<"$dtypes"
parallel=$(printf '%s\n' "${levels[@]}" | sort -n | tail -1)
batched_max=$(tr , '\n' <<<"$batched_levels" | sort -n | tail -1)
common=(--duration "$duration" --warmup 2 --threads "$threads" --quiet)
files=()
mkdir -p "$work/engine"

for d in "${types[@]}"; do
  model="$models/100m-$d"
  [ -f "$model/config.json" ] || gyre make-model --shape 100m --dtype "$d" --seed 0 --out "$model" >&2
  [ -f "$model.gguf" ] || gyre convert --to gguf --model "$model" --out "$model.gguf" --dtype "$d" >&2
  ctx=$(jq .max_position_embeddings "$model/config.json")

  echo "== $d: gyre serve and llama-server (--parallel $parallel), interleaved per level" >&2
  gport=$(free_port)
  # node itself, not the gyre function: $! must be the server so that kill stops it.
  node dist/cli/main.js serve --model "$model" --host 127.0.0.1 --port "$gport" --threads "$threads" --backend cpu >"$work/serve-$d.log" 2>&1 &
  gpid=$!; pids+=("$gpid")
  lport=$(free_port)
  # Per-slot context = -c / --parallel: every slot holds a whole request (prompt + output <= ctx).
  "$llama_bin/llama-server" -m "$model.gguf" --host 127.0.0.1 --port "$lport" -t "$threads" -tb "$threads" \
    --parallel "$parallel" --cont-batching -c $((parallel * ctx)) --no-webui >"$work/llama-server-$d.log" 2>&1 &
  lpid=$!; pids+=("$lpid")
  wait_ready "http://127.0.0.1:$gport/ping" "$work/serve-$d.log" "$gpid"
  wait_ready "http://127.0.0.1:$lport/health" "$work/llama-server-$d.log" "$lpid"
  check_lengths "http://127.0.0.1:$lport"

  for i in "${!levels[@]}"; do
    n=${levels[$i]}
    level=(--model "$model" --concurrency "$n" --seed $((seed + i)) "${common[@]}")
    # Which server goes first alternates by level, so a drift in the machine's load favours neither.
    served=(--url "http://127.0.0.1:$gport" --label 'gyre serve (HTTP)' --out "$work/$d-$n-serve.json")
    llama=(--openai-url "http://127.0.0.1:$lport" --label 'llama-server (built from source)' --out "$work/$d-$n-llama-server.json")
    if (( i % 2 == 0 )); then first=("${served[@]}"); second=("${llama[@]}"); else first=("${llama[@]}"); second=("${served[@]}"); fi
    gyre bench "${first[@]}" "${level[@]}" >/dev/null
    gyre bench "${second[@]}" "${level[@]}" >/dev/null
    files+=("$work/$d-$n-serve.json" "$work/$d-$n-llama-server.json")
    if [ "$in_process" = 1 ]; then
      gyre bench --in-process --label 'gyre (in-process)' "${level[@]}" --out "$work/$d-$n-in-process.json" >/dev/null
      node "$peer/bench.mjs" --gguf "$model.gguf" --label 'node-llama-cpp in-process (prebuilt)' "${level[@]}" \
        --out "$work/$d-$n-node-llama-cpp.json" >/dev/null
      files+=("$work/$d-$n-in-process.json" "$work/$d-$n-node-llama-cpp.json")
    fi
    echo "   N=$n done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  done
  kill "$gpid" "$lpid"; wait "$gpid" "$lpid" 2>/dev/null || true

  if [ "$engine" = 1 ]; then
    echo "== $d: llama-bench and gyre_decode_bench; llama-batched-bench and gyre_batch_bench" >&2
    "$llama_bin/llama-bench" -m "$model.gguf" -t "$threads" -p 512 -n 128 -fa 0,1 -r 3 -o json 2>/dev/null \
      | jq -c --arg d "$d" '.[] + {dtype: $d}' >>"$work/engine/llama_bench.jsonl"
    for _ in 1 2 3; do
      for pt in "512 1" "1 128"; do
        set -- $pt
        "$gyre_bin/gyre_decode_bench" "$model" --threads "$threads" --batch 1 --prompt "$1" --tokens "$2" \
          | jq -c --arg d "$d" '. + {dtype: $d}' >>"$work/engine/gyre_decode_bench.jsonl"
      done
    done
    "$llama_bin/llama-batched-bench" -m "$model.gguf" -t "$threads" -tb "$threads" -c $((batched_max * 96)) -npp 32 -ntg 64 -npl "$batched_levels" \
      --output-format jsonl 2>/dev/null | { grep '^{' || true; } | jq -c --arg d "$d" '. + {dtype: $d}' >>"$work/engine/llama_batched_bench.jsonl"
    "$gyre_bin/gyre_batch_bench" "$model" --threads "$threads" --prompt 32 --tokens 64 --concurrency "$batched_levels" \
      --out "$work/batch-$d.json" >/dev/null
    jq -c --arg d "$d" '. + {dtype: $d}' "$work/batch-$d.json" >>"$work/engine/gyre_batch_bench.jsonl"
  fi
done

touch "$work/engine/"{llama_bench,gyre_decode_bench,llama_batched_bench,gyre_batch_bench}.jsonl
jq -n --arg c "$llama_commit" --arg b "cmake -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF (bench/peers/llama-cpp/build.sh)" \
  --slurpfile lb "$work/engine/llama_bench.jsonl" --slurpfile gd "$work/engine/gyre_decode_bench.jsonl" \
  --slurpfile lbb "$work/engine/llama_batched_bench.jsonl" --slurpfile gb "$work/engine/gyre_batch_bench.jsonl" \
  '{llama_cpp_commit: $c, llama_cpp_build: $b, llama_bench: $lb, gyre_decode_bench: $gd, llama_batched_bench: $lbb, gyre_batch_bench: $gb}' \
  >"$work/engine.json"

echo "== result" >&2
merge=$(IFS=,; echo "${files[*]}")
gyre bench --merge "$merge" --engine-file "$work/engine.json" --model "$models/100m-${types[0]}" --concurrency "$concurrency" \
  --duration "$duration" --warmup 2 --seed "$seed" --threads "$threads" --out "$out"
echo "cpu_compare: $(( $(date +%s) - t0 )) s in all" >&2
