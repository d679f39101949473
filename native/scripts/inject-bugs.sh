#!/usr/bin/env bash
# Shows that the emulated CUDA suite can fail: puts each bug of native/emu/README.md's list into
# the kernels on purpose, rebuilds the emulated CUDA tests, and prints which tests fail. It edits
# sources and reverts them with `git checkout`: run it in a scratch clone, never in a tree with
# uncommitted work. Output: one line per (bug, test) with the exit status and the first failures.
set -u
cd "$(dirname "$0")/.."
cmake -S . -B build-emu -G Ninja -DGYRE_CUDA_EMULATION=ON >/dev/null
T="cuda_kernels_test cuda_attention_test cuda_forward_test cuda_engine_test cuda_int8_test cuda_graph_test"
run() {
  local name=$1
  nice ninja -C build-emu $T >/dev/null 2>&1 || { echo "$name: BUILD FAILED"; return; }
  for t in $T; do
    out=$(timeout 900 build-emu/$t 2>&1); rc=$?
    echo "$name $t rc=$rc $(echo "$out" | grep -E '^FAIL' | head -2 | cut -c1-160 | tr '\n' '|') $(echo "$out" | tail -1)"
  done
}
apply() { python3 -c "
import sys
p,old,new=sys.argv[1],sys.argv[2],sys.argv[3]
s=open(p).read(); assert old in s, (p, old); open(p,'w').write(s.replace(old,new,1))" "$@" || echo "APPLY FAILED: $*"; }
# (a) one __syncthreads removed from the GEMM's pipeline (the 64x64 kernel)
apply src/cuda/gemm_mma.cu '    __syncthreads();  // tile kt is in shared memory; everyone is done with tile kt - 1
' '    // (bug a) barrier removed
'
run a_gemm_syncthreads; git checkout -q src/cuda/gemm_mma.cu
# (a2) the same in the small-M (decode) kernel
apply src/cuda/gemm_mma.cu "    __syncthreads();  // tile kt is in shared memory; everyone is done with tile kt - 1's stage" '    // (bug a2) barrier removed'
run a2_gemm_small_m_syncthreads; git checkout -q src/cuda/gemm_mma.cu
# (b) an ldmatrix row address off by one
apply src/cuda/gemm_mma.cu 'ldmatrix_x4(a[i], &sa[cur][wm + i * 16 + (lane & 15)]' 'ldmatrix_x4(a[i], &sa[cur][wm + i * 16 + ((lane + 1) & 15)]'
run b_ldmatrix_row; git checkout -q src/cuda/gemm_mma.cu
# (c) the NaN fix of 1.1 reverted: slots past the query are loaded (then masked)
apply src/cuda/decode_attention.cu 'const int block = key >= lo && key <= p ? table[key / bs] : -1;' 'const int block = key >= lo ? table[key / bs] : -1;'
apply src/cuda/decode_attention.cu 'visible |= static_cast<unsigned>(valid) << st;' 'visible |= static_cast<unsigned>(valid && key <= p) << st;'
run c_nan_stale_kv; git checkout -q src/cuda/decode_attention.cu
# (d) the split-K merge weighting every split by the global max (not its own)
apply src/cuda/decode_attention.cu 'const float w = exp2f(ml[2 * s] - M);' 'const float w = exp2f(M - M);'
run d_merge_max; git checkout -q src/cuda/decode_attention.cu
# (e) the sliding-window bound off by one
apply src/cuda/decode_attention.cu 'max(0, p - kv.sliding_window + 1)' 'max(0, p - kv.sliding_window)'
run e_window_off_by_one; git checkout -q src/cuda/decode_attention.cu
echo DONE
