// Embedding gather: the residual stream starts as rows of the embedding table.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// out[t, :] = float(table[ids[t], :]).
// ids: [T] (device, in range); table: [vocab, H] in `dt`; out: [T, H] float32.
void embedding_gather(DType dt, const int32_t* ids, const void* table, float* out, int T, int H, cudaStream_t stream);

}  // namespace gyre
