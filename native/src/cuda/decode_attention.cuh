// Paged decode attention at memory bandwidth: one query token per sequence.
//
// A block owns one token, one KV head and up to 8 of the query heads that share it (all of
// them for G = nh / nkv <= 8, so each KV block is read once per GQA group), and one split of
// the token's visible keys. Keys go in chunks of 16 (one KV block at block size 16; 32 at
// head dim 8), chunk c of the split to warp c % warps. A warp streams its chunks through two
// cp.async stages of its own (16 bytes a lane; a lane reads back only what it copied, so no
// barrier), computes the scores with the chunk's K in registers, and keeps an online softmax
// per head with warp shuffles. The warps then merge through shared memory; with several
// splits each writes an unnormalised partial (acc, max, sum) that a merge kernel combines.
// Keys outside [p - W + 1, p] or in released (-1) blocks are never read: they load as zeros
// and are masked, so stale slots (NaN/Inf bits) cannot reach the output.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention.h"
#include "gyre/tensor.h"

namespace gyre {

// Floats of workspace decode_attention needs.
inline int64_t decode_attention_workspace(int n_tokens, int num_heads, int num_splits, int head_dim) {
  return static_cast<int64_t>(n_tokens) * num_heads * num_splits * (head_dim + 2);
}

// Splits per token for n decode tokens whose longest visible range is max_visible_keys: enough
// blocks for 2 per SM, but no more than the longest range has chunks for every warp.
int decode_attention_splits(const PagedKv& kv, int n, int max_visible_keys, int sm_count);

// q: [T, nh, d] in `dt`; positions, seq_of: [T]; tokens: [n] rows of q to run (device);
// workspace: decode_attention_workspace(n, nh, num_splits, d) floats (unused for one split);
// out: [T, nh, d] in `dt` (rows `tokens` written). Each token divides its own visible keys
// into num_splits parts.
void decode_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const int32_t* seq_of,
                      const int32_t* tokens, int n, int num_splits, float* workspace, void* out, cudaStream_t stream);

}  // namespace gyre
