// Rotary embedding fused with the write of K and V into the paged cache. The cos/sin rows
// come from the host (common/rope_table.h, the CPU backend's too, so both backends rotate
// identically, rope scaling included).
//
//   qkv row t:  | q: num_heads * d | k: num_kv_heads * d | v: num_kv_heads * d |   (float32)
//   cache:      [num_blocks * block_size (= slots), num_kv_heads, d]  per layer, K and V
//
// Dims i and i + d/2 form a pair (Hugging Face's rotate_half).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// qkv: [T, (nh + 2 * nkv) * d] float32; cos, sin: [T, d / 2]; slots: [T] (negative: not written);
// q_out: [T, nh * d] in `dt`; k_cache, v_cache: [num_slots, nkv, d] in `dt`.
void rope_and_cache(DType dt, const float* qkv, const float* cos, const float* sin, const int64_t* slots, void* q_out,
                    void* k_cache, void* v_cache, int T, int num_heads, int num_kv_heads, int head_dim,
                    cudaStream_t stream);

}  // namespace gyre
