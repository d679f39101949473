// Prefill attention, tiled flash-style: a block owns up to 16 consecutive query tokens of one
// sequence and one head, walks their keys 16 at a time straight from the paged cache (earlier
// chunks and prefix-cache hits included; this step's K/V were written there by
// rope_and_cache), applies the causal and sliding-window masks per (query, key), and keeps
// an online softmax, so no score matrix is ever stored. The backend uses it for the head dims
// the tensor-core kernel (flash_prefill.cuh) does not serve.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention.h"
#include "gyre/tensor.h"

namespace gyre {

constexpr int kPrefillTileQ = 16;  // query tokens per tile

// One tile of query tokens: rows [first, first + count) of q, all from sequence `seq`.
struct PrefillTile {
  int32_t seq, first, count;
};

// q: [T, nh, d] in `dt`; positions: [T]; tiles: [n] (device); out: [T, nh, d] in `dt`
// (the tiles' rows written).
void prefill_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const PrefillTile* tiles,
                       int n, void* out, cudaStream_t stream);

}  // namespace gyre
