#!/usr/bin/env bash
# The native half of `npm test`: builds the engine, the C++ tests and the tools, then runs ctest.
# Where no GPU is present (CI, laptops) the CUDA kernels are built for the SIMT emulation
# (GYRE_CUDA_EMULATION, native/emu/), so the CUDA tests run on the CPU beside the CPU tests; on a
# GPU machine with nvcc they are built with nvcc and run on the GPU.
#   GYRE_TEST_SLOW=1 (.ci/run sets it) also runs the tests labelled slow.
#   Extra arguments go to ctest (e.g. -R cuda_attention).
set -euo pipefail
cd "$(dirname "$0")/../.."
if { [ -e /dev/nvidiactl ] || [ -e /dev/nvidia0 ]; } && command -v nvcc >/dev/null; then
  dir=native/build-test-cuda mode=(-DGYRE_CUDA=ON -DGYRE_CUDA_EMULATION=OFF)
else
  dir=native/build-test-emu mode=(-DGYRE_CUDA=OFF -DGYRE_CUDA_EMULATION=ON)
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] || cmake -S native -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${mode[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
args=(--test-dir "$dir" --output-on-failure -j "$(nproc)")
[ "${GYRE_TEST_SLOW:-0}" = 1 ] || args+=(-LE slow)
exec ctest "${args[@]}" "$@"
