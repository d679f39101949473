// Deterministic pseudo-random weights generated on the GPU, for virtual models (virtual_model.h).
// Each element is a function of (seed, index) only: splitmix64, then Box-Muller for normals.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

enum class RandomFill {
  kNormal,  // N(0, 0.02): linear weights and embeddings (f32, f16, bf16)
  kOnes,    // 1.0: norm weights
  kScale,   // uniform in [0.5, 1.5) x 3 x 0.02 / 127: int8 row scales (float32)
  kInt8,    // uniform integers in [-127, 127]: int8 weights
};

// dst: [n] elements of `dt` (f32, f16, bf16 or i8; kInt8 needs i8, the others a float dtype).
void random_fill(void* dst, DType dt, int64_t n, RandomFill kind, uint64_t seed, cudaStream_t stream);

}  // namespace gyre
