// Whole-model helpers shared by the CUDA model tests (cuda_forward_test, cuda_int8_test): a
// backend with a pool of kPool blocks, batches over explicit block tables, logits poisoned with
// NaN so rows the backend does not write fail.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gyre/backend.h"

namespace gyre_test {

constexpr int kBlock = 16, kMaxBlocks = 16, kPool = 160;

inline std::unique_ptr<gyre::Backend> backend(const std::string& kind, std::shared_ptr<gyre::ModelWeights> w) {
  auto b = gyre::make_backend(kind, std::move(w), 2);
  gyre::KvCacheSpec spec;
  spec.block_size = kBlock;
  spec.num_blocks = kPool;
  b->allocate_kv_cache(spec);
  return b;
}

// Appends tokens [start, start + n) of a sequence whose block table is `blocks`; logits for all.
inline void add(gyre::Batch& b, const std::vector<int32_t>& ids, int start, int n, const std::vector<int>& blocks) {
  for (int i = start; i < start + n; ++i) {
    b.logits_indices.push_back(b.num_tokens());
    b.token_ids.push_back(ids[i]);
    b.positions.push_back(i);
    b.slot_mapping.push_back(static_cast<int64_t>(blocks[i / kBlock]) * kBlock + i % kBlock);
  }
  b.query_start.push_back(b.num_tokens());
  b.context_lens.push_back(start + n);
  b.max_blocks_per_seq = kMaxBlocks;
  for (int j = 0; j < kMaxBlocks; ++j) b.block_tables.push_back(j < static_cast<int>(blocks.size()) ? blocks[j] : -1);
}

inline std::vector<float> run(gyre::Backend& be, const gyre::Batch& b) {
  std::vector<float> out(b.logits_indices.size() * be.config().vocab_size, NAN);
  be.forward(b, out.data());
  return out;
}

}  // namespace gyre_test
