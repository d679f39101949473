// SiLU-and-mul, the MLP's gate: out = silu(gate) * up, from the fused gate/up projection.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// gate_up: [T, 2 * I] float32 (gate in columns [0, I), up in [I, 2I)); out: [T, I] in `dt`.
void silu_and_mul(DType dt, const float* gate_up, void* out, int T, int I, cudaStream_t stream);

}  // namespace gyre
