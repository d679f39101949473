// Paged attention on the CPU, for prefill chunks and decode tokens alike: each query token at
// position p attends to the keys at positions [p - W + 1, p] (W: sliding window, else all
// earlier ones) of its own sequence, read from the KV cache through the block table.
//
//   K cache of one layer: [num_blocks, block_size, num_kv_heads, head_dim]   (V likewise)
//   key of position j:    block_table[j / block_size], offset j % block_size
#pragma once
#include <cstdint>
#include <vector>

namespace gyre {

struct AttentionShape {
  int num_heads;
  int num_kv_heads;
  int head_dim;
  int block_size;
  int sliding_window;  // 0: none
};

// One query token, one head. q: [head_dim]; out: [head_dim]; scores: scratch [p + 1].
// k_cache/v_cache: one layer's pool; block_table: [num blocks of the sequence].
void attend_one(const AttentionShape& s, const float* q, int kv_head, int position, const int32_t* block_table,
                const float* k_cache, const float* v_cache, float* scores, float* out);

}  // namespace gyre
