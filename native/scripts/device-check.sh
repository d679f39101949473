#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine (nvcc, cmake, PyTorch, transformers; no Node, no
# network): correctness first, then speed. Results go to $OUT (at most 8 files):
# device-check.log, device-check.json, hf_compare.json, build logs, gpu-<date>.json and its plot
# gpu-<date>.png. The bench's raw JSON stays in /tmp/gyre-bench (copied whole into gpu-<date>.json).
#
#   native/scripts/device-check.sh --pack   here, before the run: copies the CUDA test binaries
#                                           and tools from native/build-cuda to native/build-carry
#                                           (build them first: ninja -C native/build-cuda)
#   native/scripts/device-check.sh          there: carry native/build-carry
#       --no-bench     correctness only (the tests and the transformers comparison), as before
#       --bench-only   the speed part only (after a correctness run that passed)
#   GYRE_CHECK_BUDGET_S (default 540): the whole run's time budget; each bench step gets what is
#   left after the steps behind it have their share, and stops (writing what it measured) in time.
#   GYRE_CHECK_BUILD_S (default 300): the limit of one build, should the script have to build.
#   Exit status: non-zero when a correctness check (a test, a build, hf_compare) fails; a failing
#   benchmark step only shows in the table printed last.
#
# There it uses the carried binaries if they run (they were built for sm_86 and sm_90), else
# builds for the GPU's architecture; where the toolkit has cuBLASLt it also builds a cuBLASLt
# variant (in the background, while the carried tests run), so that both GEMM paths are tested.
# Then: every C++ test, the transformers comparison; then gyre_bench (Llama-2-7B shape: copy
# bandwidth, prefill and decode, KV capacity at 22 GiB; the seed workload; Llama-2-13B int8 decode
# at batch 1; Mistral-7B KV capacity; the other GEMM path's prefill and decode), the transformers
# peer (native/scripts/hf_peer.py: torch.matmul on the prefill shapes, generate at batch 1,
# continuous batching on the same trace), native/scripts/summarise_gpu.py, and short tables last.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TESTS=(block_manager_test cuda_attention_test cuda_engine_test cuda_forward_test cuda_graph_test cuda_kernels_test
       cuda_int8_test cuda_sampler_test engine_test forward_test model_load_test quant_test int8_13b_test sampler_test scheduler_test)
BINARIES=("${TESTS[@]}" gyre_logits_dump gyre_bench)

if [ "${1:-}" = "--pack" ]; then
  rm -rf "$ROOT/native/build-carry" && mkdir -p "$ROOT/native/build-carry"
  for b in "${BINARIES[@]}"; do
    [ -x "$ROOT/native/build-cuda/$b" ] ||
      { echo "--pack: native/build-cuda/$b is missing: ninja -C native/build-cuda ${BINARIES[*]}"; exit 1; }
  done
  # The binaries share most of their bytes (each links the engine and its CUDA kernels): xz takes
  # 15 of them from about 60 MB to about 2 MB, well inside the 64 MiB a run may carry.
  tar -cJf "$ROOT/native/build-carry/bins.tar.xz" -C "$ROOT/native/build-cuda" "${BINARIES[@]}" || exit 1
  du -sh "$ROOT/native/build-carry"
  exit 0
fi
if [ -f "$ROOT/native/build-carry/bins.tar.xz" ]; then
  # Python's tarfile where tar has no xz.
  tar -xJf "$ROOT/native/build-carry/bins.tar.xz" -C "$ROOT/native/build-carry" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$ROOT/native/build-carry/bins.tar.xz" "$ROOT/native/build-carry" ||
    echo "== could not unpack the carried binaries (they will be built)"
fi
RUN_TESTS=1 RUN_BENCH=1
case "${1:-}" in
  --no-bench) RUN_BENCH=0 ;;
  --bench-only) RUN_TESTS=0 ;;
  "") ;;
  *) echo "usage: $0 [--pack | --no-bench | --bench-only]"; exit 2 ;;
esac

OUT=${OUT:-$ROOT/device-check-out}
mkdir -p "$OUT"
# Scratch files live outside $OUT: only the files listed above come back (at most 8), even when the
# run is cut short before its clean-up.
TMPD=$(mktemp -d /tmp/device-check.XXXXXX)
exec > >(tee "$OUT/device-check.log") 2>&1
TEE_PID=$!
cd "$ROOT"
START=$(date +%s)
BUDGET=${GYRE_CHECK_BUDGET_S:-540}
DEADLINE=$(( START + BUDGET ))
declare -A RESULT
note() { echo "== $* ($(( $(date +%s) - START ))s)"; }

note "GPU"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
ARCH=${ARCH:-90}
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
nvcc --version | tail -1

# The tests find the fixtures by the absolute path they were built with (here: this checkout
# at /work/main). Point that path at this checkout when it is free.
if [ ! -e /work/main ] && [ "$ROOT" != /work/main ]; then mkdir -p /work && ln -s "$ROOT" /work/main; fi

GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
BUILD_T=${GYRE_CHECK_BUILD_S:-300}  # a build that takes longer is killed (its tests then read "missing")
build() {  # build DIR LOG [cmake args...]: the tests and the tool only
  local dir=$1 log=$2; shift 2
  { timeout -k 10 120 cmake -S native -B "$dir" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "$@" &&
    timeout -k 10 "$BUILD_T" cmake --build "$dir" -j "$(nproc)" --target "${BINARIES[@]}"; } >"$log" 2>&1
}
# Carried binaries hold sm_86 and sm_90 code (and compute_86 PTX): usable from sm_86 up, if they
# see the GPU and find the fixtures (host_backend_seam loads one).
runs() {
  local out
  [ "$ARCH" -ge 86 ] && [ -x "$1/cuda_forward_test" ] && out=$(timeout -k 5 60 "$1/cuda_forward_test" host_backend_seam 2>&1) &&
    grep -q '^device:' <<<"$out"
}

CUDA_LIB=$(dirname "$(readlink -f "$(command -v nvcc)")")/../lib64
LT_PID=
if ls "$CUDA_LIB"/libcublasLt.so* >/dev/null 2>&1 || ls /usr/local/cuda/lib64/libcublasLt.so* >/dev/null 2>&1; then
  note "building the cuBLASLt variant for sm_$ARCH in the background"
  build native/build-device-lt "$OUT/build-lt.log" -DGYRE_CUBLASLT=ON & LT_PID=$!
else
  note "no cuBLASLt in this toolkit: only the mma.sync GEMM is tested"
fi

BIN=native/build-carry
if runs "$BIN"; then
  note "using the carried binaries ($BIN)"
else
  note "carried binaries do not run here: building for sm_$ARCH (mma.sync GEMM)"
  BIN=native/build-device
  build "$BIN" "$OUT/build.log" -DGYRE_CUBLASLT=OFF || { tail -30 "$OUT/build.log"; }
fi

run_tests() {  # run_tests DIR LABEL [tests...]: each test at most 300 s, and not past the deadline (at least 60 s)
  local dir=$1 label=$2; shift 2
  for t in "$@"; do
    note "$label $t"
    if [ ! -x "$dir/$t" ]; then RESULT["$label $t"]="missing"; continue; fi
    local lim=$(( DEADLINE - $(date +%s) )); [ "$lim" -gt 300 ] && lim=300; [ "$lim" -lt 60 ] && lim=60
    timeout -k 10 "$lim" "$dir/$t" > "$TMPD/t" 2>&1; local rc=$?
    cat "$TMPD/t"
    RESULT["$label $t"]="$([ $rc -eq 0 ] && echo ok || echo "FAIL rc=$rc$([ $rc -eq 124 ] && echo " (timeout ${lim}s)")") $(grep -E 'passed, [0-9]+ failed' "$TMPD/t" | tail -1)"
  done
  rm -f "$TMPD/t"
}
[ "$RUN_TESTS" = 1 ] && run_tests "$BIN" mma "${TESTS[@]}"

TOOLS=(--tool "$BIN/gyre_logits_dump")
if [ -n "$LT_PID" ]; then
  if ! wait "$LT_PID"; then
    RESULT["cublaslt build"]="FAIL (see build-lt.log)"; tail -30 "$OUT/build-lt.log"
  elif ! grep -q 'gyre: cuBLASLt ON' "$OUT/build-lt.log"; then
    RESULT["cublaslt build"]="FAIL (CMake did not find CUDA::cublasLt)"
  else
    LT_OK=1
    [ "$RUN_TESTS" = 1 ] && run_tests native/build-device-lt cublaslt cuda_kernels_test cuda_forward_test cuda_engine_test cuda_graph_test
    TOOLS+=(--tool native/build-device-lt/gyre_logits_dump)
  fi
fi

# Seconds a step may take: its CAP, or less so that RESERVE seconds stay for the steps after it,
# but at least its own MIN (earlier steps come first when time is short), and never past the deadline.
slot() {  # slot CAP RESERVE MIN
  local left=$(( DEADLINE - $(date +%s) )) t
  t=$(( left - $2 ))
  [ "$t" -lt "$3" ] && t=$3
  [ "$t" -gt "$1" ] && t=$1
  [ "$t" -gt "$left" ] && t=$left
  echo "$t"
}
BENCH_RESERVE=$(( RUN_BENCH ? 280 : 0 ))  # what the speed part needs at least (see the reserves below)

: > "$TMPD/hf"
if [ "$RUN_TESTS" = 1 ]; then
  note "transformers comparison"
  T=$(slot 420 "$BENCH_RESERVE" 150); [ "$T" -lt 150 ] && T=150  # correctness first: never below 150 s
  timeout -k 10 "$T" python3 native/scripts/hf_compare.py "${TOOLS[@]}" --work /tmp/gyre-hf --json "$OUT/hf_compare.json" > "$TMPD/hf" 2>&1
  HF_RC=$?
  cat "$TMPD/hf"
  RESULT["hf_compare"]="$([ $HF_RC -eq 0 ] && echo ok || echo "FAIL rc=$HF_RC")"
fi

# ---- speed: gyre_bench and the transformers peer, one process at a time on the GPU ----
BENCH_DIR=/tmp/gyre-bench
SUMMARY_ARGS=()
if [ "$RUN_BENCH" = 1 ]; then
  rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
  # The production GEMM path (cuBLASLt, as in the container) when it built; the other path too, if time is left.
  GB="$BIN/gyre_bench" GB_ALT=
  if [ -n "${LT_OK:-}" ] && [ -x native/build-device-lt/gyre_bench ]; then GB=native/build-device-lt/gyre_bench GB_ALT="$BIN/gyre_bench"; fi
  USERS=1,4,16,32,64 PER_USER=2 MIN_REQ=8
  TRACE="$BENCH_DIR/trace.jsonl"
  bench() {  # bench LABEL CAP RESERVE MIN BINARY ARGS...: one gyre_bench run into $BENCH_DIR/LABEL.json
    local label=$1 cap=$2 reserve=$3 min=$4 bin=$5; shift 5
    local t; t=$(slot "$cap" "$reserve" "$min")
    note "gyre_bench $label ($bin, ${t}s)"
    if [ "$t" -lt 30 ]; then RESULT["bench $label"]="skipped (time budget)"; return; fi
    if [ ! -x "$bin" ]; then RESULT["bench $label"]="missing $bin"; return; fi
    timeout -k 10 "$t" "$bin" --json "$BENCH_DIR/$label.json" --time-limit-s $(( t - 25 )) --label "$label" "$@"
    local rc=$?
    RESULT["bench $label"]="$([ $rc -eq 0 ] && echo ok || echo "FAIL rc=$rc")"
    [ -s "$BENCH_DIR/$label.json" ] && SUMMARY_ARGS+=(--gyre "$label=$BENCH_DIR/$label.json")
  }
  # The trace both sides replay (lengths only; the prompt ids are a function of the request number).
  timeout -k 5 60 "$GB" --phases none --write-trace "$TRACE" || RESULT["bench trace"]="FAIL"
  # In order of importance; each step's reserve is what the steps after it need at least (gyre 7B
  # workload 60 s, 13B int8 25 s, Mistral KV 15 s, the peer 120 s, the summary 10 s). The peer is
  # elastic (it skips the levels its time limit does not reach), so the cheap gyre steps go first.
  bench 7b 120 230 60 "$GB" --shape llama-2-7b --phases bandwidth,prefill,decode,kv
  bench workload-7b 150 170 60 "$GB" --shape llama-2-7b --phases workload --trace "$TRACE" --users "$USERS" \
    --requests-per-user "$PER_USER" --min-requests "$MIN_REQ"
  bench 13b-int8 60 145 30 "$GB" --shape llama-2-13b --quantization int8 --phases bandwidth,decode --decode-batches 1
  bench kv-mistral-7b 45 130 30 "$GB" --shape mistral-7b --phases kv
  T=$(slot 270 10 120)
  note "transformers peer (${T}s)"
  if [ "$T" -ge 60 ]; then
    timeout -k 15 "$T" python3 native/scripts/hf_peer.py --shape llama-2-7b --trace "$TRACE" --users "$USERS" \
      --requests-per-user "$PER_USER" --min-requests "$MIN_REQ" --time-limit-s $(( T - 40 )) \
      --json "$BENCH_DIR/transformers.json"
    PEER_RC=$?
    RESULT["bench transformers"]="$([ $PEER_RC -eq 0 ] && echo ok || echo "FAIL rc=$PEER_RC")"
  else
    RESULT["bench transformers"]="skipped (time budget)"
  fi
  [ -s "$BENCH_DIR/transformers.json" ] && SUMMARY_ARGS+=(--peer "$BENCH_DIR/transformers.json")
  [ -n "$GB_ALT" ] && bench 7b-mma 90 10 40 "$GB_ALT" --shape llama-2-7b --phases bandwidth,prefill,decode
fi

results() { for k in "${!RESULT[@]}"; do printf '%s\t%s\n' "$k" "${RESULT[$k]}"; done | sort > "$TMPD/results"; }
results
python3 - "$OUT/device-check.json" "$GPU" "$ARCH" "$BIN" "$(( $(date +%s) - START ))" "$TMPD/results" <<'PY'
import json, sys
results = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[6]) if line.strip())
json.dump(dict(gpu=sys.argv[2], sm=sys.argv[3], binaries=sys.argv[4], seconds=int(sys.argv[5]), results=results),
          open(sys.argv[1], "w"), indent=1, sort_keys=True)
PY

SUMMARY_RC=
if [ "$RUN_BENCH" = 1 ]; then
  note "GPU summary"
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo "+dirty")
  timeout -k 5 120 python3 native/scripts/summarise_gpu.py ${SUMMARY_ARGS[@]+"${SUMMARY_ARGS[@]}"} \
    --device-check "$OUT/device-check.json" --out-dir "$OUT" --date "$(date -u +%Y%m%d)" --commit "$COMMIT" \
    > "$TMPD/summary" 2>&1
  SUMMARY_RC=$?
  [ "$SUMMARY_RC" -eq 0 ] || RESULT["gpu summary"]="FAIL rc=$SUMMARY_RC"
  if [ "$SUMMARY_RC" -ne 0 ]; then  # keep the raw numbers in the log
    for f in "$BENCH_DIR"/*.json; do [ -e "$f" ] && { echo "== raw $f"; cat "$f"; echo; }; done
  fi
fi

note "summary"
results
awk -F'\t' '{ printf "%-34s %s\n", $1, $2 }' "$TMPD/results"
sed -n '/^model /,$p' "$TMPD/hf"
[ -n "$SUMMARY_RC" ] && cat "$TMPD/summary"
# The exit status is the correctness part's: a failing test, build or transformers comparison is
# non-zero; a failing or skipped benchmark step ("bench ...", "gpu summary") is reported above only.
FAILED_CHECKS=$(awk -F'\t' '$1 !~ /^(bench |gpu summary)/ && $2 !~ /^(ok|skipped)/' "$TMPD/results" | wc -l)
FAILED_BENCH=$(awk -F'\t' '$1 ~ /^(bench |gpu summary)/ && $2 !~ /^(ok|skipped)/' "$TMPD/results" | wc -l)
rm -rf "$TMPD"
echo "device-check: $GPU sm_$ARCH, $(( $(date +%s) - START ))s of ${BUDGET}s, $FAILED_CHECKS correctness check(s) failing, $FAILED_BENCH benchmark step(s) failing"
# Let tee write the last lines to the log before the run's files are collected.
exec >&- 2>&-
for _ in $(seq 50); do kill -0 "$TEE_PID" 2>/dev/null || break; sleep 0.1; done
[ "$FAILED_CHECKS" -eq 0 ]
