// Paged attention on the CPU, for prefill chunks and decode tokens alike: each query token at
// position p attends to the keys at positions [p - W + 1, p] (W: sliding window, else all
// earlier ones) of its own sequence, read from the KV cache through the block table.
//
//   K cache of one layer: [num_blocks, block_size, num_kv_heads, head_dim]   (V likewise)
//   key of position j:    block_table[j / block_size], offset j % block_size
//
// attend_rows is the kernel the backend runs; attend_one is the plain reference it is tested
// against (and the CUDA kernels too).
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

// Keys are visited in tiles of this many positions, aligned to multiples of it.
constexpr int kAttentionKeyTile = 32;

// Flash attention for a block of query rows of one sequence that share one KV head: the query
// heads of a GQA group, at one position (decode) or several (a prefill chunk). Online softmax
// over key tiles aligned to absolute positions, so a row's result depends only on its own query,
// position and keys, never on which rows share its block (batch and chunking invariance).
//   q[r]: [head_dim] at position positions[r]; out[r]: [head_dim]
//   k_cache/v_cache: one layer's pool; block_table: [num blocks of the sequence]
void attend_rows(const AttentionShape& s, int kv_head, const int32_t* block_table, const float* k_cache,
                 const float* v_cache, int num_rows, const float* const* q, const int32_t* positions,
                 float* const* out);

// One query token, one head. q: [head_dim]; out: [head_dim]; scores: scratch [p + 1].
// k_cache/v_cache: one layer's pool; block_table: [num blocks of the sequence].
void attend_one(const AttentionShape& s, const float* q, int kv_head, int position, const int32_t* block_table,
                const float* k_cache, const float* v_cache, float* scores, float* out);

}  // namespace gyre
