// Helpers for tests against the Hugging Face reference fixtures (test/fixtures/reference/).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gyre/backend.h"
#include "gyre/batch.h"
#include "gyre/safetensors.h"

namespace gyre_test {

inline const std::vector<std::string>& fixture_models() {
  static const std::vector<std::string> names = {"llama-mha", "mistral-gqa-swa", "llama-gqa-theta"};
  return names;
}
// GYRE_FIXTURES in the environment moves the fixtures (binaries built in one checkout, run in another).
inline std::string fixture_dir(const std::string& name) {
  const char* env = std::getenv("GYRE_FIXTURES");
  return std::string(env && *env ? env : GYRE_FIXTURES) + "/reference/" + name;
}

struct Prompt {
  std::vector<int32_t> ids;
  std::vector<float> logits;   // [len, vocab]
  std::vector<int32_t> greedy; // [24]
};

inline std::vector<int32_t> to_i32(const gyre::TensorView& t) {
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int32_t>(t.as<int64_t>()[i]);
  return out;
}

inline std::vector<Prompt> load_prompts(const std::string& name) {
  gyre::SafetensorsFile f(fixture_dir(name) + "/reference.safetensors");
  std::vector<Prompt> out;
  for (int k = 0; f.has("prompt_" + std::to_string(k) + ".input_ids"); ++k) {
    const std::string p = "prompt_" + std::to_string(k) + ".";
    Prompt pr;
    pr.ids = to_i32(f.get(p + "input_ids"));
    const auto& lg = f.get(p + "logits");
    pr.logits.assign(lg.as<float>(), lg.as<float>() + lg.numel());
    pr.greedy = to_i32(f.get(p + "greedy"));
    out.push_back(std::move(pr));
  }
  return out;
}

// Appends one sequence's chunk [start, start + n) of `ids` to a batch; its blocks are
// first_block, first_block + 1, ... (contiguous, enough for max_len tokens).
inline void add_chunk(gyre::Batch& b, const std::vector<int32_t>& ids, int start, int n, int first_block,
                      int block_size, int max_blocks, bool all_logits) {
  if (b.query_start.empty()) b.query_start.push_back(0);
  for (int i = start; i < start + n; ++i) {
    if (all_logits || i == start + n - 1) b.logits_indices.push_back(b.num_tokens());
    b.token_ids.push_back(ids[i]);
    b.positions.push_back(i);
    b.slot_mapping.push_back(static_cast<int64_t>(first_block + i / block_size) * block_size + i % block_size);
  }
  b.query_start.push_back(b.num_tokens());
  b.context_lens.push_back(start + n);
  b.max_blocks_per_seq = max_blocks;
  for (int j = 0; j < max_blocks; ++j) b.block_tables.push_back(first_block + j);
}

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

inline int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

}  // namespace gyre_test
