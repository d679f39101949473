// Paged decode attention: one query token per sequence. A block of threads owns one token and
// one KV head, so each KV block is loaded once for the whole group of query heads that share
// it (GQA/MQA). Long contexts are split across blocks (split-K, `split_len` keys per split,
// counted from the first key the query sees, so a sliding window bounds the split count);
// each split writes an unnormalised partial (acc, max, sum) and a merge kernel combines them
// with log-sum-exp weights. Blocks outside the sliding window, and -1 entries, are skipped.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention.h"
#include "gyre/gpu_memory.h"  // decode_num_splits
#include "gyre/tensor.h"

namespace gyre {

// Floats of workspace decode_attention needs (gyre::decode_workspace_bytes counts the same, in bytes).
inline int64_t decode_attention_workspace(int n_tokens, int num_heads, int num_splits, int head_dim) {
  return static_cast<int64_t>(n_tokens) * num_heads * num_splits * (head_dim + 2);
}

// q: [T, nh, d] in `dt`; positions, seq_of: [T]; tokens: [n] rows of q to run (device);
// num_splits * split_len must cover every token's visible keys, min(p + 1, window) (see
// decode_num_splits); split_len a multiple of block_size;
// workspace: decode_attention_workspace(n, ...) floats; out: [T, nh, d] in `dt` (rows `tokens` written).
void decode_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const int32_t* seq_of,
                      const int32_t* tokens, int n, int num_splits, int split_len, float* workspace, void* out,
                      cudaStream_t stream);

}  // namespace gyre
