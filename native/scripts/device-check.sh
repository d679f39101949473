#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine, in two passes that each fit one 300 s command
# (native/scripts/README.md has the exact commands, what is built here and carried, and the
# time limit to give each):
#
#   native/scripts/device-check.sh --pack          here: packs the CUDA tests and tools built in
#                                                  native/build-cuda into native/build-carry
#   native/scripts/device-check.sh --correctness   there: every CUDA test, then hf_compare
#   native/scripts/device-check.sh --speed         there: gyre_bench, the transformers peer, the summary
#
# Every child runs under `timeout` (--correctness: GYRE_CHECK_CHILD_S, default 90 s; hf_compare
# GYRE_CHECK_HF_S, default 120 s) and never past the pass's deadline (GYRE_CHECK_BUDGET_S, default
# 300 s): a step that would start with less than 5 s left is reported "skipped (time budget)".
# $OUT/<pass>.json is rewritten after every step, so a run cut short keeps what it measured.
# Files in $OUT (at most 8 come back): <pass>.log, <pass>.json, and hf_compare.json and
# build-lt.log (--correctness) or gpu-<date>.json and gpu-<date>.png (--speed).
#
# Exit status: 0 every step ran and passed; 1 a step failed (a wrong result, a crash, a child past
# its cap, a CUDA test that saw no GPU); 2 no GPU is visible (or bad usage); 3 nothing failed but
# steps were skipped for time.
#
# For the dry run (test/scripts/device_check.test.ts): GYRE_CHECK_BIN (the binaries' folder,
# default native/build-carry), GYRE_CHECK_PYTHON (default python3), GYRE_CHECK_CUBLASLT=0 (no
# cuBLASLt build).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CUDA_TESTS=(cuda_kernels_test cuda_attention_test cuda_int8_test cuda_forward_test cuda_engine_test cuda_graph_test cuda_sampler_test int8_13b_test)
LT_TESTS=(cuda_kernels_test cuda_forward_test cuda_engine_test cuda_graph_test)  # the tests a GEMM path changes
BINARIES=("${CUDA_TESTS[@]}" gyre_logits_dump gyre_bench)

if [ "${1:-}" = "--pack" ]; then
  rm -rf "$ROOT/native/build-carry" && mkdir -p "$ROOT/native/build-carry"
  for b in "${BINARIES[@]}"; do
    [ -x "$ROOT/native/build-cuda/$b" ] ||
      { echo "--pack: native/build-cuda/$b is missing: ninja -C native/build-cuda ${BINARIES[*]}"; exit 1; }
  done
  # The binaries share most of their bytes (each links the engine and its kernels): xz takes them
  # from about 60 MB to a few MB, well inside the 64 MiB a run may carry.
  tar -cJf "$ROOT/native/build-carry/bins.tar.xz" -C "$ROOT/native/build-cuda" "${BINARIES[@]}" || exit 1
  du -sh "$ROOT/native/build-carry"
  exit 0
fi
case "${1:-}" in
  --correctness) PASS=correctness ;;
  --speed) PASS=speed ;;
  *) echo "usage: $0 --pack | --correctness | --speed"; exit 2 ;;
esac

OUT=${OUT:-$ROOT/device-check-out}
mkdir -p "$OUT"
TMPD=$(mktemp -d /tmp/device-check.XXXXXX)  # scratch stays outside $OUT
exec > >(tee "$OUT/$PASS.log") 2>&1
TEE_PID=$!
cd "$ROOT"
START=$(date +%s)
BUDGET=${GYRE_CHECK_BUDGET_S:-300}
CHILD_S=${GYRE_CHECK_CHILD_S:-90}
DEADLINE=$(( START + BUDGET ))
PY=${GYRE_CHECK_PYTHON:-python3}
BIN=${GYRE_CHECK_BIN:-native/build-carry}
export GYRE_FIXTURES="$ROOT/test/fixtures"  # the tests were built in another checkout
GPU="" ARCH="" DONE=false
KEYS=() VALUES=()
note() { echo "== $* ($(( $(date +%s) - START ))s)"; }
left() { echo $(( DEADLINE - $(date +%s) )); }

json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/}
  printf '"%s"' "$s"
}
write_json() {  # $OUT/<pass>.json, replaced whole (a reader never sees half a file)
  local i sep=""
  {
    printf '{"pass": %s, "gpu": %s, "sm": %s, "binaries": %s, "budget_s": %d, "seconds": %d, "done": %s, "results": {' \
      "$(json_str "$PASS")" "$(json_str "$GPU")" "$(json_str "$ARCH")" "$(json_str "$BIN")" "$BUDGET" \
      "$(( $(date +%s) - START ))" "$DONE"
    for i in "${!KEYS[@]}"; do printf '%s\n  %s: %s' "$sep" "$(json_str "${KEYS[$i]}")" "$(json_str "${VALUES[$i]}")"; sep=","; done
    printf '\n}}\n'
  } > "$OUT/$PASS.json.tmp" && mv "$OUT/$PASS.json.tmp" "$OUT/$PASS.json"
}
record() { KEYS+=("$1"); VALUES+=("$2"); write_json; }

finish() {  # the table, the exit status
  local i failed=0 skipped=0
  DONE=true
  write_json
  note "summary"
  for i in "${!KEYS[@]}"; do
    printf '%-36s %s\n' "${KEYS[$i]}" "${VALUES[$i]}"
    case "${VALUES[$i]}" in ok*) ;; skipped*) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
  done
  [ -s "$TMPD/tables" ] && cat "$TMPD/tables"
  echo "device-check --$PASS: ${GPU:-no GPU} sm_${ARCH:-?}, $(( $(date +%s) - START ))s of ${BUDGET}s, $failed failing, $skipped skipped"
  rm -rf "$TMPD"
  exec >&- 2>&-
  for _ in $(seq 50); do kill -0 "$TEE_PID" 2>/dev/null || break; sleep 0.1; done  # tee's last lines
  if [ "$1" != 0 ]; then exit "$1"; fi
  if [ "$failed" -gt 0 ]; then exit 1; fi
  if [ "$skipped" -gt 0 ]; then exit 3; fi
  exit 0
}

# run_child LABEL CAP COMMAND...: one step, at most CAP seconds and never past the deadline.
run_child() {
  local label=$1 cap=$2 l rc status; shift 2
  l=$(left)
  if [ "$l" -lt 5 ]; then record "$label" "skipped (time budget)"; return; fi
  [ "$cap" -gt "$l" ] && cap=$l
  note "$label (at most ${cap}s)"
  timeout -k 5 "$cap" "$@" > "$TMPD/child" 2>&1; rc=$?
  cat "$TMPD/child"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="FAIL timeout ${cap}s"
  elif [ $rc -eq 77 ] || grep -q '^skipped' "$TMPD/child"; then status="FAIL skipped: the test saw no GPU"
  elif [ $rc -ne 0 ]; then status="FAIL rc=$rc"
  else status="ok"
  fi
  status="$status $(grep -E '[0-9]+ passed, [0-9]+ failed' "$TMPD/child" | tail -1)"
  record "$label" "${status% }"
  return $rc
}

# ---- the GPU ----
note "GPU"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
if [ -z "$GPU" ] || [ -z "$ARCH" ]; then
  record "gpu" "FAIL no GPU visible (nvidia-smi lists none)"
  finish 2
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
if [ -f "$BIN/bins.tar.xz" ]; then
  tar -xJf "$BIN/bins.tar.xz" -C "$BIN" 2>/dev/null ||
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BIN/bins.tar.xz" "$BIN" ||
    echo "== could not unpack $BIN/bins.tar.xz"
fi

if [ "$PASS" = correctness ]; then
  # The cuBLASLt variant (the container's GEMM path; this machine's toolkit has cuBLASLt, the
  # build machine's has not) builds in the background while the carried tests run, and is given
  # up 150 s before the deadline (the time its tests and hf_compare need).
  LT_PID=
  if [ "${GYRE_CHECK_CUBLASLT:-1}" = 1 ] && command -v nvcc >/dev/null &&
     ls "$(dirname "$(readlink -f "$(command -v nvcc)")")"/../lib64/libcublasLt.so* >/dev/null 2>&1; then
    note "building the cuBLASLt variant for sm_$ARCH in the background"
    GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
    ( T=$(( $(left) - 150 )); [ "$T" -gt 10 ] || exit 124
      timeout -k 5 "$T" cmake -S native -B native/build-device-lt "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DGYRE_CUDA=ON -DGYRE_CUBLASLT=ON > "$TMPD/lt-config" 2>&1; rc=$?
      cat "$TMPD/lt-config"
      [ $rc -eq 0 ] && grep -q 'gyre: cuBLASLt ON' "$TMPD/lt-config" || exit 1
      T=$(( $(left) - 150 )); [ "$T" -gt 10 ] || exit 124
      timeout -k 5 "$T" cmake --build native/build-device-lt -j "$(nproc)" --target "${LT_TESTS[@]}" gyre_logits_dump gyre_bench
    ) > "$OUT/build-lt.log" 2>&1 & LT_PID=$!
  fi

  for t in "${CUDA_TESTS[@]}"; do
    if [ -x "$BIN/$t" ]; then run_child "mma $t" "$CHILD_S" "$BIN/$t"; else record "mma $t" "FAIL missing $BIN/$t"; fi
  done

  TOOLS=(--tool "$BIN/gyre_logits_dump")
  if [ -n "$LT_PID" ]; then
    if wait "$LT_PID" && [ -x native/build-device-lt/gyre_logits_dump ]; then
      for t in "${LT_TESTS[@]}"; do run_child "cublaslt $t" "$CHILD_S" "native/build-device-lt/$t"; done
      TOOLS+=(--tool native/build-device-lt/gyre_logits_dump)
    else
      record "cublaslt build" "skipped (not built within the budget: build-lt.log)"
    fi
  fi

  HF_S=$(left); [ "$HF_S" -gt "${GYRE_CHECK_HF_S:-120}" ] && HF_S=${GYRE_CHECK_HF_S:-120}
  run_child "hf_compare" "$HF_S" "$PY" native/scripts/hf_compare.py "${TOOLS[@]}" --work /tmp/gyre-hf \
    --json "$OUT/hf_compare.json" --time-limit-s $(( HF_S > 20 ? HF_S - 15 : 5 ))
  HF_RC=$?
  if [ "$HF_RC" -eq 3 ]; then VALUES[${#VALUES[@]}-1]="skipped (hf_compare ran out of time for some pairs)"; write_json; fi
  sed -n '/^model /,$p' "$TMPD/child" > "$TMPD/tables"
  finish 0
fi

# ---- speed: one process at a time on the GPU ----
BENCH_DIR=/tmp/gyre-bench
rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
# The production GEMM path (cuBLASLt) when a correctness pass built it on this machine.
GB="$BIN/gyre_bench"
[ -x native/build-device-lt/gyre_bench ] && GB=native/build-device-lt/gyre_bench
SUMMARY_ARGS=()
USERS=1,4,16,32 PER_USER=2 MIN_REQ=8
TRACE="$BENCH_DIR/trace.jsonl"
# Seconds a step may take: its CAP, or less so that RESERVE seconds stay for the steps after it,
# but at least its own MIN (earlier steps come first when time is short), never past the deadline.
slot() {
  local l t
  l=$(left); t=$(( l - $2 ))
  [ "$t" -lt "$3" ] && t=$3
  [ "$t" -gt "$1" ] && t=$1
  [ "$t" -gt "$l" ] && t=$l
  echo "$t"
}
bench() {  # bench LABEL CAP RESERVE MIN ARGS...: one gyre_bench run into $BENCH_DIR/LABEL.json
  local label=$1 t; t=$(slot "$2" "$3" "$4"); shift 4
  if [ "$t" -lt 20 ]; then record "bench $label" "skipped (time budget)"; return; fi
  run_child "bench $label" "$t" "$GB" --json "$BENCH_DIR/$label.json" --time-limit-s $(( t - 10 )) --label "$label" "$@"
  [ -s "$BENCH_DIR/$label.json" ] && SUMMARY_ARGS+=(--gyre "$label=$BENCH_DIR/$label.json")
}
if [ ! -x "$GB" ]; then record "bench" "FAIL missing $GB"; finish 0; fi
run_child "bench trace" 30 "$GB" --phases none --write-trace "$TRACE"
# In order of importance; each reserve is what the steps after it need at least.
bench 7b 70 190 40 --shape llama-2-7b --phases bandwidth,prefill,decode,kv
bench workload-7b 80 110 40 --shape llama-2-7b --phases workload --trace "$TRACE" --users "$USERS" \
  --requests-per-user "$PER_USER" --min-requests "$MIN_REQ"
bench 13b-int8 30 80 20 --shape llama-2-13b --quantization int8 --phases bandwidth,decode --decode-batches 1
bench kv-mistral-7b 20 60 15 --shape mistral-7b --phases kv
T=$(slot 90 15 45)
if [ "$T" -ge 45 ]; then
  run_child "bench transformers" "$T" "$PY" native/scripts/hf_peer.py --shape llama-2-7b --trace "$TRACE" \
    --users "$USERS" --requests-per-user "$PER_USER" --min-requests "$MIN_REQ" --time-limit-s $(( T - 25 )) \
    --json "$BENCH_DIR/transformers.json"
else
  record "bench transformers" "skipped (time budget)"
fi
[ -s "$BENCH_DIR/transformers.json" ] && SUMMARY_ARGS+=(--peer "$BENCH_DIR/transformers.json")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo "+dirty")
run_child "gpu summary" 15 "$PY" native/scripts/summarise_gpu.py ${SUMMARY_ARGS[@]+"${SUMMARY_ARGS[@]}"} \
  --device-check "$OUT/speed.json" --out-dir "$OUT" --date "$(date -u +%Y%m%d)" --commit "$COMMIT" ||
  for f in "$BENCH_DIR"/*.json; do [ -e "$f" ] && { echo "== raw $f"; cat "$f"; echo; }; done  # keep the numbers
cp "$TMPD/child" "$TMPD/tables"
finish 0
