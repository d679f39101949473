// Fused residual add + RMSNorm, the seam between the blocks of the model:
//   h[r] += delta[r]                 (the residual stream, float32)
//   out[i] = w * (h[r] * rsqrt(mean(h[r]^2) + eps)), rounded to the activation dtype
// With `rows`, output row i reads residual row rows[i] (the final norm on the logits rows
// only) and h is left as it was.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// h: [T, H] float32; delta: [T, H] float32 or null; w: [H] float32;
// rows: [R] or null (then R = T); out: [R, H] in `dt`.
void add_rms_norm(DType dt, float* h, const float* delta, const float* w, const int32_t* rows, void* out, int R,
                  int H, float eps, cudaStream_t stream);

}  // namespace gyre
