// Decode steps on the CUDA backend: CUDA-graph replay against eager execution for several padded
// batch sizes, and batch invariance (a sequence's decode logits alone vs in a batch of 64).
// With the in-house GEMM (no cuBLASLt: the emulation build, CI) both must be bit-identical;
// with cuBLASLt (its algorithm depends on M) and INT8 weights (GEMV up to 8 rows) the drift is
// printed.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <algorithm>
#include <cstring>
#include <random>

#include "cuda/cuda_backend.h"
#include "cuda_test_util.h"
#include "cuda/gemm.cuh"
#include "cuda_model_util.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

constexpr int kBlocksPerSeq = 2;  // 32 tokens per sequence

struct Seqs {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<int>> blocks;
};

Seqs make_seqs(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  Seqs s;
  for (int i = 0; i < n; ++i) {
    const int len = 3 + static_cast<int>(rng() % 10);
    std::vector<int32_t> t(len);
    for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
    s.tokens.push_back(t);
    s.blocks.push_back({i * kBlocksPerSeq, i * kBlocksPerSeq + 1});
  }
  return s;
}

std::unique_ptr<CudaBackend> cuda_backend(const std::string& model, bool graphs, bool int8 = false) {
  LoadOptions lo;
  if (int8) lo.quantization = Quantization::kInt8;
  std::unique_ptr<Backend> b = backend("cuda", load_model(fixture_dir(model), lo));
  auto* c = dynamic_cast<CudaBackend*>(b.get());
  CHECK(c != nullptr);
  b.release();
  std::unique_ptr<CudaBackend> out(c);
  out->set_cuda_graphs(graphs);
  return out;
}

void prefill(Backend& be, const Seqs& s) {
  Batch b;
  b.clear();
  for (size_t i = 0; i < s.tokens.size(); ++i)
    add(b, s.tokens[i], 0, static_cast<int>(s.tokens[i].size()), s.blocks[i]);
  run(be, b);
}

// One decode step of sequences `which` (their last token); logits [which.size(), V].
std::vector<float> decode(Backend& be, const Seqs& s, const std::vector<int>& which) {
  Batch b;
  b.clear();
  for (int i : which) add(b, s.tokens[i], static_cast<int>(s.tokens[i].size()) - 1, 1, s.blocks[i]);
  return run(be, b);
}

int top_id(const float* row, int n) { return static_cast<int>(std::max_element(row, row + n) - row); }

}  // namespace

TEST(host_graph_batch_sizes) {
  const std::vector<std::pair<int, int>> expect = {{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {16, 16},
                                                   {17, 24}, {25, 32}, {64, 64}, {250, 256}, {256, 256}, {257, 0}};
  for (auto [n, p] : expect) CHECK_MSG(DecodeGraphs::padded_size(n) == p, n << " -> " << DecodeGraphs::padded_size(n));
}

TEST(decode_graph_replay_matches_eager) {
  const bool exact = !gemm_has_cublaslt();
  std::vector<std::string> models = {"mistral-gqa-swa"};
  if (full_shapes()) models.push_back("llama-mha");
  for (const std::string& model : models) {
    auto eager = cuda_backend(model, false), graph = cuda_backend(model, true);
    const int V = eager->config().vocab_size;
    Seqs s = make_seqs(20, V, 1);
    prefill(*eager, s);
    prefill(*graph, s);  // prefill runs eagerly on both
    CHECK_EQ(graph->num_graph_captures(), 0);
    // Padded sizes 4, 8, 4 (replayed), 16, 24, 1, 8 (replayed), 24 (replayed), 8, 24 (replayed).
    const std::vector<int> sizes = {3, 5, 3, 9, 17, 1, 8, 20, /* again: */ 5, 17};
    for (int n : sizes) {
      std::vector<int> which(n);
      for (int i = 0; i < n; ++i) which[i] = (i * 7 + n) % 20;  // a different subset each step
      std::sort(which.begin(), which.end());
      which.erase(std::unique(which.begin(), which.end()), which.end());
      const auto a = decode(*eager, s, which), g = decode(*graph, s, which);
      for (size_t r = 0; r < which.size(); ++r) {
        const float* ar = &a[r * V];
        const float* gr = &g[r * V];
        if (exact) {
          CHECK_MSG(std::memcmp(ar, gr, sizeof(float) * V) == 0,
                    model << " batch " << which.size() << " row " << r << ": graph logits differ from eager");
        } else {
          const double e = rel_err(std::vector<float>(gr, gr + V), std::vector<float>(ar, ar + V));
          CHECK_MSG(e <= 2e-3, model << " batch " << which.size() << " row " << r << ": rel err " << e);
        }
        s.tokens[which[r]].push_back(top_id(ar, V));  // both backends continue with the same token
      }
    }
    CHECK_EQ(eager->num_graph_replays(), 0);
    CHECK_EQ(graph->num_graph_replays(), static_cast<int64_t>(sizes.size()));
    CHECK_EQ(graph->num_graph_captures(), 5);  // 4, 8, 16, 24, 1
  }
}

// A sequence's decode logits alone and in a batch of 64 (eager, so the kernels' own reduction
// order is what is compared). INT8 weights: measured only (its GEMV serves up to 8 rows, its
// tensor-core kernel more, and they sum in different orders).
TEST(decode_rows_do_not_depend_on_the_batch) {
  const bool mma = !gemm_has_cublaslt();
  std::vector<std::pair<const char*, bool>> cases = {{"llama-gqa-theta", false}, {"mistral-gqa-swa", false}};
  if (full_shapes()) cases.push_back({"llama-gqa-theta", true});  // measured, not asserted
  for (auto [model, int8] : cases) {
    const bool exact = mma && !int8;
    auto batched = cuda_backend(model, false, int8), alone = cuda_backend(model, false, int8);
    const int V = batched->config().vocab_size;
    Seqs s = make_seqs(64, V, 2);
    prefill(*batched, s);
    prefill(*alone, s);
    std::vector<int> all(64);
    for (int i = 0; i < 64; ++i) all[i] = i;
    const auto in_batch = decode(*batched, s, all);
    double max_diff = 0;
    int agree = 0;
    const std::vector<int> probe = {0, 8, 9, 63};
    for (int i : probe) {
      const auto one = decode(*alone, s, {i});
      const float* br = &in_batch[static_cast<size_t>(i) * V];
      for (int v = 0; v < V; ++v) max_diff = std::max(max_diff, std::fabs(double(one[v]) - br[v]));
      agree += top_id(one.data(), V) == top_id(br, V);
    }
    std::printf("  %s%s: alone vs in a batch of 64: max |dlogit| %.3g, greedy agreement %d/%zu%s\n", model,
                int8 ? " int8" : "", max_diff, agree, probe.size(), exact ? "" : " (measured, not asserted)");
    if (exact) CHECK_MSG(max_diff == 0.0, model << ": decode logits depend on the batch: max |dlogit| " << max_diff);
  }
}

int main(int argc, char** argv) { return cuda_test_main(argc, argv); }

#else
GYRE_SKIP_MAIN("no CUDA backend in this build")
#endif
