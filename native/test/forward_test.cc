// The CPU forward pass against Hugging Face transformers' reference logits and greedy tokens,
// and its batch invariance: bit-identical logits alone, chunked, batched, on 1 or 2 threads.
#include <cstring>
#include <memory>

#include "check.h"
#include "gyre/backend.h"
#include "gyre/weights.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

constexpr int kBlock = 16;
constexpr int kMaxBlocks = 16;  // 256 tokens per sequence

std::unique_ptr<Backend> cpu(const std::string& name, int threads, int seqs = 8) {
  std::shared_ptr<ModelWeights> w = load_model(fixture_dir(name));
  auto b = make_backend("cpu", w, threads);
  KvCacheSpec spec;
  spec.block_size = kBlock;
  spec.num_blocks = kMaxBlocks * seqs;
  b->allocate_kv_cache(spec);
  return b;
}

// All-position logits of one prompt run as chunks of `chunk` tokens.
std::vector<float> prompt_logits(Backend& be, const std::vector<int32_t>& ids, int chunk, int seq_slot = 0) {
  const int V = be.config().vocab_size, n = static_cast<int>(ids.size());
  std::vector<float> out(static_cast<size_t>(n) * V);
  for (int s = 0; s < n; s += chunk) {
    int len = std::min(chunk, n - s);
    Batch b;
    b.clear();
    add_chunk(b, ids, s, len, seq_slot * kMaxBlocks, kBlock, kMaxBlocks, true);
    be.forward(b, out.data() + static_cast<size_t>(s) * V);
  }
  return out;
}

}  // namespace

TEST(logits_match_reference) {
  for (const auto& name : fixture_models()) {
    auto be = cpu(name, 2);
    auto prompts = load_prompts(name);
    CHECK(prompts.size() >= 4);
    for (size_t k = 0; k < prompts.size(); ++k) {
      auto got = prompt_logits(*be, prompts[k].ids, 1 << 20);
      double diff = max_abs_diff(got.data(), prompts[k].logits.data(), got.size());
      std::printf("  %s prompt_%zu len %zu: max |ours - HF| = %.3g\n", name.c_str(), k, prompts[k].ids.size(), diff);
      CHECK_MSG(diff <= 1e-4, name << " prompt_" << k << " max abs diff " << diff);
    }
  }
}

TEST(greedy_matches_reference) {
  for (const auto& name : fixture_models()) {
    auto be = cpu(name, 2);
    const int V = be->config().vocab_size;
    for (const auto& p : load_prompts(name)) {
      std::vector<int32_t> seq = p.ids;
      std::vector<float> logits(V);
      Batch b;
      b.clear();
      add_chunk(b, seq, 0, static_cast<int>(seq.size()), 0, kBlock, kMaxBlocks, false);
      be->forward(b, logits.data());
      std::vector<int32_t> got;
      for (int step = 0; step < 24; ++step) {
        got.push_back(argmax(logits.data(), V));
        seq.push_back(got.back());
        b.clear();
        add_chunk(b, seq, static_cast<int>(seq.size()) - 1, 1, 0, kBlock, kMaxBlocks, false);
        be->forward(b, logits.data());
      }
      CHECK_MSG(got == p.greedy, name << ": greedy tokens differ from the reference");
    }
  }
}

TEST(chunked_prefill_is_bit_identical) {
  auto be = cpu("mistral-gqa-swa", 2);
  auto prompts = load_prompts("mistral-gqa-swa");
  const auto& ids = prompts.back().ids;  // 150 tokens, window 16
  auto whole = prompt_logits(*be, ids, 1 << 20);
  for (int chunk : {1, 7, 16, 33}) {
    auto chunked = prompt_logits(*be, ids, chunk);
    CHECK_MSG(std::memcmp(whole.data(), chunked.data(), whole.size() * 4) == 0, "chunk " << chunk << " differs");
  }
}

TEST(batched_is_bit_identical_and_thread_count_free) {
  for (const auto& name : fixture_models()) {
    auto prompts = load_prompts(name);
    auto be2 = cpu(name, 2), be1 = cpu(name, 1);
    const int V = be2->config().vocab_size;
    // Alone, on one thread.
    std::vector<std::vector<float>> alone;
    for (const auto& p : prompts) alone.push_back(prompt_logits(*be1, p.ids, 1 << 20));
    // All prompts in one batch, on two threads; each sequence in its own blocks.
    Batch b;
    b.clear();
    for (size_t k = 0; k < prompts.size(); ++k)
      add_chunk(b, prompts[k].ids, 0, static_cast<int>(prompts[k].ids.size()), static_cast<int>(k) * kMaxBlocks, kBlock,
                kMaxBlocks, true);
    std::vector<float> out(b.logits_indices.size() * V);
    be2->forward(b, out.data());
    size_t row = 0;
    for (size_t k = 0; k < prompts.size(); ++k) {
      CHECK_MSG(std::memcmp(out.data() + row * V, alone[k].data(), alone[k].size() * 4) == 0,
                name << " prompt_" << k << " differs in a batch");
      row += prompts[k].ids.size();
    }
  }
}

GYRE_TEST_MAIN
