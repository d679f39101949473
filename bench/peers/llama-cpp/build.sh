#!/usr/bin/env bash
# Builds llama.cpp's llama-server, llama-bench and llama-batched-bench from the source that the
# pinned node-llama-cpp package carries (llama/gitRelease.bundle), the way its users build it:
# CMake Release, native CPU flags (GGML_NATIVE: AVX-512 where the CPU has it), no network
# (LLAMA_CURL=OFF). Everything lands in this folder (node_modules/, llama.cpp/, build/: ignored
# by git); it is never a root dependency. Idempotent: a second run only prints where things are.
# Prints the binaries' folder on stdout; build/commit.txt holds llama.cpp's commit.
# Usage: bench/peers/llama-cpp/build.sh     Env: JOBS (nproc)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
bins=(llama-server llama-bench llama-batched-bench)

built() { for b in "${bins[@]}"; do [ -x "build/bin/$b" ] || return 1; done; [ -s build/commit.txt ]; }
if built; then echo "$here/build/bin"; exit 0; fi

# --ignore-scripts: node-llama-cpp's postinstall would fetch or build its own binaries; the
# in-process peer (bench.mjs) uses the prebuilt @node-llama-cpp/linux-x64 package instead.
[ -f node_modules/node-llama-cpp/llama/gitRelease.bundle ] || npm ci --ignore-scripts --no-audit --no-fund >&2
bundle=node_modules/node-llama-cpp/llama/gitRelease.bundle
[ -f "$bundle" ] || { echo "build.sh: $bundle is missing (node-llama-cpp without its llama.cpp source?)" >&2; exit 1; }
if [ ! -d llama.cpp/.git ]; then
  rm -rf llama.cpp
  git clone -q "$bundle" llama.cpp >&2
fi
commit=$(git -C llama.cpp rev-parse HEAD)

cmake -S llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build build -j "${JOBS:-$(nproc)}" --target "${bins[@]}" >&2
echo "$commit" >build/commit.txt
built || { echo "build.sh: the build finished without ${bins[*]} in build/bin" >&2; exit 1; }
echo "$here/build/bin"
