// Weight-only INT8 on the GPU: gemm_int8 (GEMV and tensor-core paths) against a double
// reference, the random fill of virtual models, and whole int8 models through the CUDA backend
// against the CPU backend on the same int8 weights. Tolerances (relative L2 error):
//   1e-4          gemm_int8: a * q is exact in float32 (11 + 7 significant bits), so only the
//                 float32 summation order differs from the reference (~sqrt(K) * 2^-24)
//   5e-3 / 2e-2   int8 model vs CPU, f16 / bf16: as cuda_forward_test (activations rounded to
//                 the dtype at every GEMM input; both sides use the same int8 weights)
// Without a GPU only the host_ tests run.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <algorithm>
#include <cstring>
#include <list>
#include <numeric>

#include "cuda_test_util.h"
#include "cuda_model_util.h"
#include "cuda/gemm.cuh"
#include "synthetic/random_fill.cuh"
#include "gyre/backend.h"
#include "gyre/weights.h"
#include "reference.h"
#include "synthetic/virtual_model.h"

using namespace gyre;
using namespace gyre_test;

namespace {

const DType kDtypes[] = {DType::kF16, DType::kBF16};

struct Int8Matrix {
  std::vector<int8_t> q;     // [N, K]
  std::vector<float> scale;  // [N]
};
// Uniform q in [-127, 127] and positive scales; row 0 is all +127 (the extreme), row 1 has scale 0.
Int8Matrix random_int8(int N, int K, std::mt19937& rng) {
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(1e-3f, 2e-2f);
  Int8Matrix m;
  m.q.resize(size_t(N) * K);
  m.scale.resize(N);
  for (auto& x : m.q) x = static_cast<int8_t>(qd(rng));
  for (auto& s : m.scale) s = sd(rng);
  std::fill(m.q.begin(), m.q.begin() + K, int8_t{127});
  if (N > 1) m.scale[1] = 0.0f;
  return m;
}

enum class Path { kDispatch, kGemv, kMma };
const char* path_name(Path p) { return p == Path::kDispatch ? "gemm_int8" : p == Path::kGemv ? "gemv_int8" : "mma"; }

void run_path(Path p, DType dt, const void* A, int lda, const int8_t* W, const float* s, float* C, int ldc, int M, int N,
              int K) {
  if (p == Path::kDispatch) gemm_int8(dt, A, lda, W, s, C, ldc, M, N, K, nullptr);
  else if (p == Path::kGemv) gemv_int8(dt, A, lda, W, s, C, ldc, M, N, K, nullptr);
  else gemm_int8_mma(dt, A, lda, W, s, C, ldc, M, N, K, nullptr);
}

}  // namespace

TEST(host_gemm_int8_rejects_bad_shapes) {
  // Checked before anything touches the device.
  alignas(16) static char buf[64];
  const float s = 1;
  CHECK_THROWS_WITH(gemm_int8(DType::kF16, buf, 16, reinterpret_cast<int8_t*>(buf), &s, nullptr, 1, 1, 1, 24, nullptr),
                    "multiple of 16");
  CHECK_THROWS_WITH(gemm_int8(DType::kF16, buf, 12, reinterpret_cast<int8_t*>(buf), &s, nullptr, 1, 1, 1, 16, nullptr),
                    "multiple of 16");
  CHECK_THROWS_WITH(gemm_int8(DType::kF16, buf + 2, 16, reinterpret_cast<int8_t*>(buf), &s, nullptr, 1, 1, 1, 16,
                              nullptr),
                    "16-byte aligned");
  CHECK_THROWS_WITH(gemv_int8(DType::kF16, buf, 16, reinterpret_cast<int8_t*>(buf), &s, nullptr, 1, 9, 1, 16, nullptr),
                    "M must be");
}

// C = scale * (A . q^T) against a double reference, for every path that takes the shape;
// ldc > N leaves a NaN margin that must survive.
TEST(gemm_int8_matches_reference) {
  std::mt19937 rng(11);
  using Shape = std::tuple<int, int, int, int>;  // M, N, K, padding of A's and C's rows
  // Every path, tail and padding case; full_shapes() adds the model-sized ones.
  std::vector<Shape> shapes = {{1, 64, 64, 0}, {2, 64, 13824, 0}, {3, 130, 1040, 8}, {5, 200, 176, 16},
                               {9, 96, 4096, 8}, {17, 4096, 128, 0}, {33, 96, 1040, 0}, {100, 200, 1040, 16},
                               {512, 64, 64, 8}};
  if (full_shapes())
    shapes.insert(shapes.end(), {{1, 4096, 4096, 0}, {8, 4096, 4096, 0}, {3, 32000, 64, 0}, {32, 1024, 4096, 0},
                                 {512, 256, 1024, 0}});
  for (DType dt : kDtypes)
    for (auto [M, N, K, pad] : shapes) {
      const int lda = K + pad, ldc = N + (pad ? 3 : 0);
      HalfData a = random_half(size_t(M) * lda, dt, rng);
      Int8Matrix w = random_int8(N, K, rng);
      auto d_a = to_device(a.bits), d_q = to_device(w.q), d_s = to_device(w.scale);
      std::vector<double> ref(size_t(M) * N);
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          double s = 0;
          for (int k = 0; k < K; ++k) s += double(a.values[size_t(m) * lda + k]) * w.q[size_t(n) * K + k];
          ref[size_t(m) * N + n] = s * w.scale[n];
        }
      for (Path p : {Path::kDispatch, Path::kGemv, Path::kMma}) {
        if (p == Path::kGemv && M > kGemvInt8MaxM) continue;
        auto c = poisoned(size_t(M) * ldc * 4);
        run_path(p, dt, d_a.get(), lda, d_q.get<int8_t>(), d_s.get<float>(), c.get<float>(), ldc, M, N, K);
        auto got = from_device<float>(c, size_t(M) * ldc);
        std::vector<float> got_c(size_t(M) * N);
        bool margin_ok = true;
        for (int m = 0; m < M; ++m) {
          for (int n = 0; n < N; ++n) got_c[size_t(m) * N + n] = got[size_t(m) * ldc + n];
          for (int n = N; n < ldc; ++n) margin_ok = margin_ok && std::isnan(got[size_t(m) * ldc + n]);
        }
        const double e = rel_err(got_c, ref);
        CHECK_MSG(e <= 1e-4 && margin_ok, path_name(p) << " " << dtype_name(dt) << " M " << M << " N " << N << " K " << K
                                                       << ": err " << e << (margin_ok ? "" : ", wrote past N"));
      }
    }
}

// The GEMV sums each row in a fixed order: a row's result is bit-identical alone or in a batch,
// and from run to run.
TEST(gemv_int8_rows_do_not_depend_on_the_batch) {
  std::mt19937 rng(12);
  const int N = 1000, K = 4096;
  for (DType dt : kDtypes) {
    HalfData a = random_half(size_t(kGemvInt8MaxM) * K, dt, rng);
    Int8Matrix w = random_int8(N, K, rng);
    auto d_a = to_device(a.bits), d_q = to_device(w.q), d_s = to_device(w.scale);
    auto all = poisoned(size_t(kGemvInt8MaxM) * N * 4), again = poisoned(size_t(kGemvInt8MaxM) * N * 4);
    gemm_int8(dt, d_a.get(), K, d_q.get<int8_t>(), d_s.get<float>(), all.get<float>(), N, kGemvInt8MaxM, N, K, nullptr);
    gemm_int8(dt, d_a.get(), K, d_q.get<int8_t>(), d_s.get<float>(), again.get<float>(), N, kGemvInt8MaxM, N, K,
              nullptr);
    auto got_all = from_device<float>(all, size_t(kGemvInt8MaxM) * N);
    CHECK(got_all == from_device<float>(again, size_t(kGemvInt8MaxM) * N));
    for (int m = 0; m < kGemvInt8MaxM; ++m) {
      auto one = poisoned(size_t(N) * 4);
      const auto* row = d_a.get<uint16_t>() + size_t(m) * K;
      gemm_int8(dt, row, K, d_q.get<int8_t>(), d_s.get<float>(), one.get<float>(), N, 1, N, K, nullptr);
      auto got_one = from_device<float>(one, N);
      CHECK_MSG(std::memcmp(got_one.data(), &got_all[size_t(m) * N], 4 * size_t(N)) == 0,
                dtype_name(dt) << " row " << m << " differs alone and in a batch of " << kGemvInt8MaxM);
    }
  }
}

TEST(random_fill_is_deterministic_and_in_range) {
  const int64_t n = 1 << 20;
  auto stats = [](const std::vector<float>& v) {
    double s = 0, ss = 0;
    for (float x : v) { s += x; ss += double(x) * x; }
    const double mean = s / v.size();
    return std::pair{mean, std::sqrt(ss / v.size() - mean * mean)};
  };
  for (DType dt : kDtypes) {  // N(0, 0.02)
    auto b = poisoned(n * 2), b2 = poisoned(n * 2), b3 = poisoned(n * 2);
    random_fill(b.get(), dt, n, RandomFill::kNormal, 7, nullptr);
    random_fill(b2.get(), dt, n, RandomFill::kNormal, 7, nullptr);
    random_fill(b3.get(), dt, n, RandomFill::kNormal, 8, nullptr);
    auto bits = from_device<uint16_t>(b, n);
    CHECK(bits == from_device<uint16_t>(b2, n));
    CHECK(bits != from_device<uint16_t>(b3, n));
    auto [mean, sd] = stats(to_floats(bits, dt));
    CHECK_MSG(std::fabs(mean) < 2e-4 && std::fabs(sd - 0.02) < 4e-4, dtype_name(dt) << " mean " << mean << " sd " << sd);
  }
  {  // int8: uniform in [-127, 127], both ends reached
    auto b = poisoned(n);
    random_fill(b.get(), DType::kI8, n, RandomFill::kInt8, 1, nullptr);
    auto q = from_device<int8_t>(b, n);
    CHECK(*std::min_element(q.begin(), q.end()) == -127 && *std::max_element(q.begin(), q.end()) == 127);
    std::vector<float> f(q.begin(), q.end());
    auto [mean, sd] = stats(f);
    CHECK_MSG(std::fabs(mean) < 0.5 && std::fabs(sd - 73.6) < 1.0, "int8 mean " << mean << " sd " << sd);
  }
  {  // scales: positive, in [0.5, 1.5) x 3 x 0.02 / 127; norms: 1
    auto s = poisoned(n * 4), o = poisoned(n * 4);
    random_fill(s.get(), DType::kF32, n, RandomFill::kScale, 2, nullptr);
    random_fill(o.get(), DType::kF32, n, RandomFill::kOnes, 3, nullptr);
    auto sv = from_device<float>(s, n), ov = from_device<float>(o, n);
    const float unit = 3 * 0.02f / 127;
    for (float x : sv) CHECK(x >= 0.5f * unit && x < 1.5f * unit);
    for (float x : ov) CHECK(x == 1.0f);
  }
  CHECK_THROWS_WITH(random_fill(nullptr, DType::kF16, 1, RandomFill::kInt8, 0, nullptr), "int8");
}

// ---------- whole models ----------

namespace {


double tol(DType dt) { return dt == DType::kBF16 ? 2e-2 : 5e-3; }

// The fixture (float32) with every linear weight quantized by quantize_int8_rows, the embedding
// (and the LM head unless `lm_head_i8`) rounded to `dt`, the norms float32.
std::shared_ptr<ModelWeights> int8_model(const std::string& name, DType dt, bool lm_head_i8) {
  struct Holder {
    std::shared_ptr<ModelWeights> src;
    std::list<std::vector<uint16_t>> halves;
    std::list<std::vector<int8_t>> qs;
    std::list<std::vector<float>> scales;
    ModelWeights w;
  };
  auto h = std::make_shared<Holder>();
  h->src = load_model(fixture_dir(name));
  auto conv = [&](const TensorView& t) {
    auto& bits = h->halves.emplace_back(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = float_to_bits(t.as<float>()[i], dt);
    TensorView o = t;
    o.dtype = dt;
    o.data = bits.data();
    o.nbytes = bits.size() * 2;
    return o;
  };
  auto quant = [&](const TensorView& t, TensorView& scale) {
    const int64_t rows = t.shape[0], cols = t.shape[1];
    auto& q = h->qs.emplace_back(static_cast<size_t>(rows * cols));
    auto& s = h->scales.emplace_back(static_cast<size_t>(rows));
    quantize_int8_rows(t, q.data(), s.data());
    scale.dtype = DType::kF32;
    scale.shape = {rows};
    scale.data = s.data();
    scale.nbytes = s.size() * 4;
    TensorView o = t;
    o.dtype = DType::kI8;
    o.data = q.data();
    o.nbytes = q.size();
    return o;
  };
  const ModelWeights& src = *h->src;
  ModelWeights& w = h->w;
  w.config = src.config;
  w.dtype = dt;
  w.quantization = Quantization::kInt8;
  w.embed = conv(src.embed);
  w.final_norm = src.final_norm;
  w.lm_head = lm_head_i8 ? quant(src.lm_head, w.lm_head_scale) : conv(src.lm_head);
  for (const LayerWeights& l : src.layers) {
    LayerWeights o;
    o.input_norm = l.input_norm;
    o.post_norm = l.post_norm;
    o.wq = quant(l.wq, o.wq_scale);
    o.wk = quant(l.wk, o.wk_scale);
    o.wv = quant(l.wv, o.wv_scale);
    o.wo = quant(l.wo, o.wo_scale);
    o.w_gate = quant(l.w_gate, o.w_gate_scale);
    o.w_up = quant(l.w_up, o.w_up_scale);
    o.w_down = quant(l.w_down, o.w_down_scale);
    w.layers.push_back(o);
  }
  return std::shared_ptr<ModelWeights>(h, &h->w);
}


}  // namespace

// Prefill chunks (the tensor-core path), a mixed step, then decodes of two and one sequence
// (the GEMV), with the LM head float or int8.
TEST(int8_model_matches_cpu) {
  const std::vector<std::string> models = fixture_models();
  for (int di = 0; di < 2; ++di)
    for (bool lm_i8 : {false, true})
      for (int mi = 0; mi < int(models.size()); ++mi) {
        if (!in_quick_half(di + lm_i8, mi)) continue;
        const DType dt = kDtypes[di];
        const std::string& name = models[mi];
        auto w = int8_model(name, dt, lm_i8);
        auto gpu = backend("cuda", w), cpu = backend("cpu", w);
        auto prompts = load_prompts(name);
        std::vector<int32_t> a = prompts.back().ids, bq = prompts.front().ids;
        a.resize(std::min<size_t>(a.size(), 100));
        const int na = static_cast<int>(a.size()), nb = static_cast<int>(bq.size());
        a.insert(a.end(), {7, 8});
        bq.insert(bq.end(), {9, 10});
        std::vector<int> A(kMaxBlocks), B(kMaxBlocks);
        std::iota(A.begin(), A.end(), 0);
        std::iota(B.begin(), B.end(), kMaxBlocks);
        std::vector<Batch> steps(4);
        for (auto& s : steps) s.clear();
        add(steps[0], a, 0, 40, A);
        add(steps[0], bq, 0, nb, B);
        add(steps[1], a, 40, na - 40, A);
        add(steps[1], bq, nb, 1, B);
        add(steps[2], a, na, 1, A);
        add(steps[2], bq, nb + 1, 1, B);
        add(steps[3], a, na + 1, 1, A);
        const int V = w->config.vocab_size;
        for (size_t s = 0; s < steps.size(); ++s) {
          auto g = run(*gpu, steps[s]), r = run(*cpu, steps[s]);
          double worst = 0;
          for (size_t row = 0; row < steps[s].logits_indices.size(); ++row)
            worst = std::max(worst, rel_err(&g[row * V], &r[row * V], 0, V));
          std::printf("  %s %s lm_head %s step %zu (%d tokens): worst rel err vs CPU %.3g\n", name.c_str(),
                      dtype_name(dt), lm_i8 ? "i8" : "float", s, steps[s].num_tokens(), worst);
          CHECK_MSG(worst <= tol(dt), name << " " << dtype_name(dt) << " step " << s << ": rel err " << worst);
        }
      }
}

namespace {

// A model with shapes but no data: the upload generates the values on the GPU.
std::shared_ptr<ModelWeights> virtual_model(bool int8) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 256;
  c.intermediate_size = 704;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 1000;
  c.max_position_embeddings = 4096;
  return gyre::virtual_model(c, int8, /*int8_lm_head=*/int8);
}

}  // namespace

// Virtual models (float and int8) upload, run and give finite logits; the int8 one the same
// bits from a second upload (the fill and gemm_int8 are deterministic; cuBLASLt need not be).
TEST(virtual_model_runs_and_is_deterministic) {
  for (bool int8 : {false, true}) {
    auto w = virtual_model(int8);
    auto g1 = backend("cuda", w), g2 = backend("cuda", w);
    std::vector<int32_t> ids(40);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i * 37 % 1000);
    std::vector<int> blocks(kMaxBlocks);
    std::iota(blocks.begin(), blocks.end(), 0);
    for (int step = 0; step < 2; ++step) {
      Batch b;
      b.clear();
      if (step == 0) add(b, ids, 0, 39, blocks);
      else add(b, ids, 39, 1, blocks);
      auto l1 = run(*g1, b), l2 = run(*g2, b);
      if (int8) CHECK(std::memcmp(l1.data(), l2.data(), l1.size() * 4) == 0);
      double ss = 0;
      for (float x : l1) {
        CHECK_MSG(std::isfinite(x), (int8 ? "int8" : "f16") << " step " << step << ": non-finite logit");
        ss += double(x) * x;
      }
      CHECK(ss > 0);
    }
  }
}

// The fill is the model's (native/synthetic/), not the upload's: a model whose tensors lack data
// and that has no filler is refused with a message that says so.
TEST(tensors_without_data_need_a_filler) {
  auto w = virtual_model(false);
  w->filler = nullptr;
  CHECK_THROWS_WITH(backend("cuda", w), "has no data");
}

int main(int argc, char** argv) { return cuda_test_main(argc, argv); }

#else
GYRE_SKIP_MAIN("no CUDA backend in this build")
#endif
