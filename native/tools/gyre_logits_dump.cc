// Logits of a backend for prompts given in a safetensors file, for comparisons with other
// implementations (native/scripts/hf_compare.py):
//   gyre_logits_dump MODEL_DIR PROMPTS.safetensors OUT.safetensors [--backend K] [--greedy N] [--chunk C]
// PROMPTS holds prompt_<k>.input_ids (int64 [n]). OUT gets, per prompt, prompt_<k>.logits
// (float32 [n, vocab], every position, prefilled in chunks of C tokens, 0: all at once),
// prompt_<k>.greedy (int64 [N], greedy continuation) and prompt_<k>.greedy_top5 (int64 [N, 5],
// the top 5 tokens at each greedy step).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gyre/backend.h"
#include "gyre/error.h"
#include "gyre/safetensors.h"
#include "gyre/weights.h"

using namespace gyre;

namespace {

constexpr int kBlock = 16;

// Adds tokens [start, start + n) of a sequence stored in blocks 0, 1, 2, ...
void add(Batch& b, const std::vector<int32_t>& ids, int start, int n, int max_blocks, bool all_logits) {
  b.clear();
  for (int i = start; i < start + n; ++i) {
    if (all_logits || i == start + n - 1) b.logits_indices.push_back(b.num_tokens());
    b.token_ids.push_back(ids[i]);
    b.positions.push_back(i);
    b.slot_mapping.push_back(i);
  }
  b.query_start.push_back(b.num_tokens());
  b.context_lens.push_back(start + n);
  b.max_blocks_per_seq = max_blocks;
  for (int j = 0; j < max_blocks; ++j) b.block_tables.push_back(j);
}

std::vector<int64_t> top5(const float* x, int n) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int64_t a, int64_t b) { return x[a] > x[b]; });
  idx.resize(5);
  return idx;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR PROMPTS.safetensors OUT.safetensors [--backend K] [--greedy N] [--chunk C]\n",
                 argv[0]);
    return 2;
  }
  std::string kind = "cuda";
  int greedy = 16, chunk = 0;
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--backend") kind = argv[i + 1];
    else if (a == "--greedy") greedy = std::atoi(argv[i + 1]);
    else if (a == "--chunk") chunk = std::atoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  try {
    std::shared_ptr<ModelWeights> w = load_model(argv[1]);
    SafetensorsFile prompts(argv[2]);
    std::vector<std::vector<int32_t>> ids;
    for (int k = 0; prompts.has("prompt_" + std::to_string(k) + ".input_ids"); ++k) {
      const TensorView& t = prompts.get("prompt_" + std::to_string(k) + ".input_ids");
      ids.emplace_back(t.as<int64_t>(), t.as<int64_t>() + t.numel());
    }
    size_t longest = 0;
    for (const auto& p : ids) longest = std::max(longest, p.size());
    const int max_blocks = static_cast<int>((longest + greedy + kBlock - 1) / kBlock);
    auto be = make_backend(kind, w);
    KvCacheSpec spec;
    spec.block_size = kBlock;
    spec.num_blocks = max_blocks;
    be->allocate_kv_cache(spec);
    const int V = w->config.vocab_size;

    std::vector<std::vector<float>> logits(ids.size());
    std::vector<std::vector<int64_t>> tokens(ids.size()), tops(ids.size());
    std::vector<NamedTensor> out;
    Batch b;
    for (size_t k = 0; k < ids.size(); ++k) {
      std::vector<int32_t> seq = ids[k];
      const int n = static_cast<int>(seq.size()), step = chunk > 0 ? chunk : n;
      logits[k].resize(static_cast<size_t>(n) * V);
      for (int s = 0; s < n; s += step) {
        add(b, seq, s, std::min(step, n - s), max_blocks, true);
        be->forward(b, logits[k].data() + static_cast<size_t>(s) * V);
      }
      std::vector<float> last(logits[k].end() - V, logits[k].end());
      for (int g = 0; g < greedy; ++g) {
        const auto t = top5(last.data(), V);
        tokens[k].push_back(t[0]);
        tops[k].insert(tops[k].end(), t.begin(), t.end());
        seq.push_back(static_cast<int32_t>(t[0]));
        add(b, seq, static_cast<int>(seq.size()) - 1, 1, max_blocks, false);
        be->forward(b, last.data());
      }
      const std::string p = "prompt_" + std::to_string(k) + ".";
      out.push_back({p + "logits", DType::kF32, {n, V}, logits[k].data()});
      out.push_back({p + "greedy", DType::kI64, {greedy}, tokens[k].data()});
      out.push_back({p + "greedy_top5", DType::kI64, {greedy, 5}, tops[k].data()});
    }
    write_safetensors(argv[3], out);
    std::printf("{\"backend\": \"%s\", \"dtype\": \"%s\", \"prompts\": %zu}\n", be->name(), dtype_name(w->dtype), ids.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_logits_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
