// int8 on Llama-2-13B's shape: a 2-layer model with hidden 5120, intermediate 13824, 40 heads of
// 128 and a 32,000-token vocabulary (random f16 weights, 0.96 B parameters), int8 against the
// f16 path on the same backend, with the bounds of int8_metrics.h. On a GPU machine it checks that a
// 2-layer 13B-shaped model in int8 matches its fp16 path; elsewhere it runs on the CPU.
#include <immintrin.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "check.h"
#include "gyre/backend.h"
#include "gyre/shapes.h"
#include "gyre/weights.h"
#include "int8_metrics.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

constexpr int kBlock = 16;
constexpr int kTokens = 160;  // the held-out sequence
constexpr int kMaxBlocks = kTokens / kBlock;
constexpr float kFinalNormScale = 4.0f;  // mean top-token probability about 0.5, as in quant_test

ModelConfig shape_13b() {
  ModelConfig c = shape_config("llama-2-13b");
  c.num_layers = 2;
  return c;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// n f16 values: mean `mean`, std `std` (Irwin-Hall of four 16-bit uniforms: close to normal,
// one hash per value), from (seed, index) alone, so the split over threads does not matter.
std::vector<char> f16_tensor(int64_t n, uint64_t seed, float mean, float std) {
  std::vector<char> buf(static_cast<size_t>(n) * 2);
  uint16_t* out = reinterpret_cast<uint16_t*>(buf.data());
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([=] {
      for (int64_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        const uint64_t h = splitmix(seed * 0x100000001B3ull + static_cast<uint64_t>(i));
        const float u = float(h & 0xFFFF) + float((h >> 16) & 0xFFFF) + float((h >> 32) & 0xFFFF) + float(h >> 48);
        const float z = (u / 65536.0f - 2.0f) * 1.7320508f;  // mean 0, variance 1
        out[i] = _cvtss_sh(mean + std * z, 0);
      }
    });
  }
  for (auto& th : pool) th.join();
  return buf;
}

// The float model: linear weights with std 1/sqrt(in) (a trained model's scale), embedding and
// LM head N(0, 0.02), norms 1 + N(0, 0.1), the final norm times `final_norm_scale` so logits
// are peaked.
std::shared_ptr<ModelWeights> random_f16_model(float final_norm_scale) {
  auto m = std::make_shared<ModelWeights>();
  m->config = shape_13b();
  m->dtype = DType::kF16;
  const ModelConfig& c = m->config;
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t Q = static_cast<int64_t>(c.num_heads) * c.head_dim, KV = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  uint64_t seed = 1;
  auto tensor = [&](std::vector<int64_t> shape, float mean, float std) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    m->owned.push_back(f16_tensor(n, seed++, mean, std));
    return TensorView{DType::kF16, shape, m->owned.back().data(), m->owned.back().size()};
  };
  m->embed = tensor({V, H}, 0.0f, 0.02f);
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights w;
    w.input_norm = tensor({H}, 1.0f, 0.1f);
    w.wq = tensor({Q, H}, 0.0f, 1.0f / std::sqrt(float(H)));
    w.wk = tensor({KV, H}, 0.0f, 1.0f / std::sqrt(float(H)));
    w.wv = tensor({KV, H}, 0.0f, 1.0f / std::sqrt(float(H)));
    w.wo = tensor({H, Q}, 0.0f, 1.0f / std::sqrt(float(Q)));
    w.post_norm = tensor({H}, 1.0f, 0.1f);
    w.w_gate = tensor({I, H}, 0.0f, 1.0f / std::sqrt(float(H)));
    w.w_up = tensor({I, H}, 0.0f, 1.0f / std::sqrt(float(H)));
    w.w_down = tensor({H, I}, 0.0f, 1.0f / std::sqrt(float(I)));
    m->layers.push_back(w);
  }
  m->final_norm = tensor({H}, final_norm_scale, 0.1f * final_norm_scale);
  m->lm_head = tensor({V, H}, 0.0f, 0.02f);
  return m;
}

// The same weights with every layer's linear weights quantized (the f16 buffers stay shared).
std::shared_ptr<ModelWeights> int8_copy(const ModelWeights& f16) {
  auto m = std::make_shared<ModelWeights>();
  m->config = f16.config;
  m->dtype = f16.dtype;
  m->embed = f16.embed;
  m->layers = f16.layers;
  m->final_norm = f16.final_norm;
  m->lm_head = f16.lm_head;
  quantize_weights(*m, /*quantize_lm_head=*/false);
  return m;
}

std::unique_ptr<Backend> backend(std::shared_ptr<ModelWeights> w) {
#ifdef GYRE_CUDA_EMULATION
  // 1.9 GB of weights is too big for the emulated device, and far too slow there: the CPU
  // backend here; cuda_int8_test covers the int8 kernels under emulation on small shapes.
  return one_sequence_backend("cpu", std::move(w), 0, kBlock, kMaxBlocks);
#else
  return one_sequence_backend("auto", std::move(w), 0, kBlock, kMaxBlocks);
#endif
}

}  // namespace

TEST(int8_matches_f16_on_a_2_layer_13b_shape) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<ModelWeights> wf = random_f16_model(/*final_norm_scale=*/kFinalNormScale);
  std::shared_ptr<ModelWeights> w8 = int8_copy(*wf);
  CHECK(w8->layers[0].wq.dtype == DType::kI8 && w8->layers[1].w_down.dtype == DType::kI8);
  CHECK(w8->linear_weight_bytes() * 2 < wf->linear_weight_bytes() * 1.01);
  auto bf = backend(wf);
  const std::string device = bf->name();
  auto seq = sample_sequence(*bf, kTokens, 5, kBlock, kMaxBlocks);
  auto ref = all_logits(*bf, seq, kBlock, kMaxBlocks);
  bf.reset();  // one model's weights on the device at a time
  auto b8 = backend(w8);
  auto q = all_logits(*b8, seq, kBlock, kMaxBlocks);
  const Int8Metrics m = int8_metrics(ref.data(), q.data(), seq, wf->config.vocab_size);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  backend %s, %d tokens, %.1f s; bounds: rel err max %.3f mean %.3f, top-1 >= %.2f and no clear flips, |ppl change| <= %.1f%%\n",
              device.c_str(), kTokens, secs, kMaxRelErr, kMeanRelErr, kMinTop1, 100 * kMaxPplChange);
  print_metrics("13B shape, 2 layers", m);
  CHECK_MSG(m.mean_top_prob > 0.3, "logits not peaked (mean top prob " << m.mean_top_prob << ")");
  CHECK_MSG(m.max_rel_err > 0, "int8 logits equal f16 ones: the weights were not quantized");
  CHECK_MSG(within_bounds(m), "int8 against f16 is out of bounds");
}

GYRE_TEST_MAIN
