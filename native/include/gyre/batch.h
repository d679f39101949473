// The model runner's input: one flat batch of tokens from many sequences, each at its own
// position, with K/V read and written through block tables. This is what the scheduler
// produces every step and what every backend (cpu, cuda) consumes.
//
//   tokens:        | seq0 chunk (prefill) | seq1 (1 decode token) | seq2 chunk | ...
//   query_start:   0                      n0                      n0+1         ...
//   slot_mapping:  cache slot (block_id * block_size + offset) where each token's K/V goes
//   block_tables:  [num_seqs, max_blocks_per_seq], block ids of each sequence, -1 for none
//                  (released blocks of a sliding window are -1 and never read)
#pragma once
#include <cstdint>
#include <vector>

namespace gyre {

struct Batch {
  std::vector<int32_t> token_ids;     // [num_tokens]
  std::vector<int32_t> positions;     // [num_tokens]
  std::vector<int64_t> slot_mapping;  // [num_tokens]
  std::vector<int32_t> query_start;   // [num_seqs + 1], prefix sums of tokens per sequence
  std::vector<int32_t> context_lens;  // [num_seqs], tokens in the cache after this step
  std::vector<int32_t> block_tables;  // [num_seqs * max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  std::vector<int32_t> logits_indices;  // rows of token_ids whose logits are returned

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(context_lens.size()); }
  void clear() {
    token_ids.clear(); positions.clear(); slot_mapping.clear(); query_start.assign(1, 0);
    context_lens.clear(); block_tables.clear(); max_blocks_per_seq = 0; logits_indices.clear();
  }
};

}  // namespace gyre
