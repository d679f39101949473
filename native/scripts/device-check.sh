#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine (nvcc, cmake, PyTorch, transformers; no Node, no
# network). Results go to $OUT: device-check.log, device-check.json, hf_compare.json, build logs.
#
#   native/scripts/device-check.sh --pack   here, before the run: copies the CUDA test binaries
#                                           and tools from native/build-cuda to native/build-carry
#   native/scripts/device-check.sh          there: carry native/build-carry
#
# There it uses the carried binaries if they run (they were built for sm_86 and sm_90), else
# builds for the GPU's architecture; where the toolkit has cuBLASLt it also builds a cuBLASLt
# variant (in the background, while the carried tests run), so that both GEMM paths are tested.
# Then: every C++ test, the transformers comparison, and a short table last.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TESTS=(block_manager_test cuda_attention_test cuda_engine_test cuda_forward_test cuda_kernels_test engine_test
       forward_test model_load_test sampler_test scheduler_test)
BINARIES=("${TESTS[@]}" gyre_logits_dump)

if [ "${1:-}" = "--pack" ]; then
  rm -rf "$ROOT/native/build-carry" && mkdir -p "$ROOT/native/build-carry"
  for b in "${BINARIES[@]}"; do cp "$ROOT/native/build-cuda/$b" "$ROOT/native/build-carry/" || exit 1; done
  du -sh "$ROOT/native/build-carry"
  exit 0
fi

OUT=${OUT:-$ROOT/device-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-check.log") 2>&1
cd "$ROOT"
START=$(date +%s)
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
build() {  # build DIR LOG [cmake args...]: the tests and the tool only
  local dir=$1 log=$2; shift 2
  { cmake -S native -B "$dir" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "$@" &&
    cmake --build "$dir" -j "$(nproc)" --target "${BINARIES[@]}"; } >"$log" 2>&1
}
# Carried binaries hold sm_86 and sm_90 code (and compute_86 PTX): usable from sm_86 up, if they
# see the GPU and find the fixtures (host_backend_seam loads one).
runs() {
  local out
  [ "$ARCH" -ge 86 ] && [ -x "$1/cuda_forward_test" ] && out=$("$1/cuda_forward_test" host_backend_seam 2>&1) &&
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

run_tests() {  # run_tests DIR LABEL [tests...]
  local dir=$1 label=$2; shift 2
  for t in "$@"; do
    note "$label $t"
    if [ ! -x "$dir/$t" ]; then RESULT["$label $t"]="missing"; continue; fi
    timeout 300 "$dir/$t" > "$OUT/.t" 2>&1; local rc=$?
    cat "$OUT/.t"
    RESULT["$label $t"]="$([ $rc -eq 0 ] && echo ok || echo "FAIL rc=$rc") $(grep -E 'passed, [0-9]+ failed' "$OUT/.t" | tail -1)"
  done
  rm -f "$OUT/.t"
}
run_tests "$BIN" mma "${TESTS[@]}"

TOOLS=(--tool "$BIN/gyre_logits_dump")
if [ -n "$LT_PID" ]; then
  if ! wait "$LT_PID"; then
    RESULT["cublaslt build"]="FAIL (see build-lt.log)"; tail -30 "$OUT/build-lt.log"
  elif ! grep -q 'gyre: cuBLASLt ON' "$OUT/build-lt.log"; then
    RESULT["cublaslt build"]="FAIL (CMake did not find CUDA::cublasLt)"
  else
    run_tests native/build-device-lt cublaslt cuda_kernels_test cuda_forward_test cuda_engine_test
    TOOLS+=(--tool native/build-device-lt/gyre_logits_dump)
  fi
fi

note "transformers comparison"
timeout 420 python3 native/scripts/hf_compare.py "${TOOLS[@]}" --work /tmp/gyre-hf --json "$OUT/hf_compare.json" > "$OUT/.hf" 2>&1
HF_RC=$?
cat "$OUT/.hf"
RESULT["hf_compare"]="$([ $HF_RC -eq 0 ] && echo ok || echo "FAIL rc=$HF_RC")"

for k in "${!RESULT[@]}"; do printf '%s\t%s\n' "$k" "${RESULT[$k]}"; done | sort > "$OUT/.results"
python3 - "$OUT/device-check.json" "$GPU" "$ARCH" "$BIN" "$(( $(date +%s) - START ))" "$OUT/.results" <<'PY'
import json, sys
results = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[6]) if line.strip())
json.dump(dict(gpu=sys.argv[2], sm=sys.argv[3], binaries=sys.argv[4], seconds=int(sys.argv[5]), results=results),
          open(sys.argv[1], "w"), indent=1, sort_keys=True)
PY

note "summary"
awk -F'\t' '{ printf "%-34s %s\n", $1, $2 }' "$OUT/.results"
sed -n '/^model /,$p' "$OUT/.hf"
rm -f "$OUT/.hf" "$OUT/.results"
FAILED=$(printf '%s\n' "${RESULT[@]}" | grep -c -v '^ok')
echo "device-check: $GPU sm_$ARCH, $(( $(date +%s) - START ))s, $FAILED failing"
[ "$FAILED" -eq 0 ]
