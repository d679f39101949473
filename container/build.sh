#!/usr/bin/env bash
# Builds Gyre from a clean checkout. The image's build stage runs it (container/Dockerfile), and
# so can CI, natively. Steps, in this order (default: all):
#   deps    npm ci without package scripts (the steps below are the build)
#   native  the addon with every backend this machine can build: CUDA (sm_86 for the A10G of
#           ml.g5, sm_90 for H100) when nvcc is on PATH, else CPU only
#   ts      TypeScript -> dist/
#   check   the addon loads (no GPU needed: cudart is linked statically) and the CLI starts
#   prune   drop devDependencies: node_modules is then what the run stage copies
# Environment: GYRE_NATIVE_BUILD_DIR (native/build), GYRE_CUDA_ARCHS ("86;90"),
# GYRE_REQUIRE_CUDA=1 fails the build when the CUDA backend was not compiled.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir="${GYRE_NATIVE_BUILD_DIR:-native/build}"
archs="${GYRE_CUDA_ARCHS:-86;90}"
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(deps native ts check prune)
for s in "${steps[@]}"; do
  case "$s" in deps|native|ts|check|prune) ;; *)
    echo "build.sh: unknown step '$s' (steps: deps native ts check prune)" >&2; exit 2 ;;
  esac
done

say() { echo "== build.sh: $*"; }

for s in "${steps[@]}"; do
  case "$s" in
  deps)
    say "npm ci (no scripts)"
    npm ci --ignore-scripts --no-audit --no-fund ;;
  native)
    cuda_flags=()
    if command -v nvcc >/dev/null; then
      say "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'): CUDA backend for sm ${archs}"
      cuda_flags=("--CDCMAKE_CUDA_ARCHITECTURES=${archs}" "--CDGYRE_CUDA=ON")
    else
      say "no nvcc: CPU backend only"
    fi
    # rebuild = configure from scratch, so the "gyre: CUDA backend" line below is always printed.
    log="$(mktemp)"
    npx cmake-js rebuild -d native -O "$build_dir" --CDCMAKE_BUILD_TYPE=Release --CDGYRE_BUILD_TESTS=OFF \
      "${cuda_flags[@]}" 2>&1 | tee "$log"
    cuda="$(grep -o 'gyre: CUDA backend [A-Z]*' "$log" | tail -n1 || true)"
    rm -f "$log"
    say "${cuda:-gyre: CUDA backend unknown}"
    if [[ "${GYRE_REQUIRE_CUDA:-0}" == 1 && "$cuda" != "gyre: CUDA backend ON" ]]; then
      echo "build.sh: GYRE_REQUIRE_CUDA=1 but the CUDA backend was not built" >&2; exit 1
    fi ;;
  ts)
    say "tsc"
    npx tsc -p tsconfig.json ;;
  check)
    say "addon loads, CLI starts"
    node -e "const a = require(require('path').resolve(process.argv[1]));
      if (typeof a.loadEngine !== 'function') throw new Error('addon without loadEngine');" \
      "$build_dir/Release/gyre.node"
    node dist/cli/main.js --version ;;
  prune)
    say "npm prune --omit=dev"
    npm prune --omit=dev --ignore-scripts --no-audit --no-fund ;;
  esac
done
