// What both attention kernels need to find a token's keys: the paged cache of one layer and
// the batch's block tables. Plain host header (no device code), shared with the tests.
//
//   cache (K or V): [num_blocks, block_size, num_kv_heads, head_dim]
//   key j of a sequence: block block_table[j / block_size], offset j % block_size
//   query at position p sees keys [p - window + 1, p] (window 0: [0, p]); -1 entries never
#pragma once
#include <cstdint>

namespace gyre {

struct PagedKv {
  const void* k_cache;          // [num_blocks, block_size, nkv, d]
  const void* v_cache;          // [num_blocks, block_size, nkv, d]
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq;
  int block_size;
  int num_heads, num_kv_heads, head_dim;
  int sliding_window;           // 0: none
  float scale;                  // scores are dot(q, k) / scale, scale = sqrt(head_dim)
};

}  // namespace gyre
