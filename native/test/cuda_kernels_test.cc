// The CUDA kernels against CPU references on fresh random inputs, outputs poisoned with NaN
// first so that an unwritten element fails. Tolerances (relative L2 error):
//   exact          embedding gather, rope + cache write (same float ops as the CPU, then rounded)
//   1e-4           GEMM (exactly representable inputs; only float32 accumulation order differs)
//   2e-3 / 1e-2    f16 / bf16 outputs (RMSNorm, SiLU-and-mul): one rounding to the dtype
// Without a GPU only the host_ tests run.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <immintrin.h>

#include <cstring>

#include "common/rope_table.h"
#include "cpu/ops.h"
#include "cuda/activation.cuh"
#include "cuda_test_util.h"
#include "cuda/embedding.cuh"
#include "cuda/gemm.cuh"
#include "cuda/norm.cuh"
#include "cuda/rope.cuh"

using namespace gyre;
using namespace gyre_test;

namespace {
const DType kDtypes[] = {DType::kF16, DType::kBF16};
}

TEST(host_half_conversion_matches_f16c_and_rne) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = bits(rng);
    if (i % 3 == 0) u = (u & 0x80ffffffu) | (static_cast<uint32_t>(100 + i % 50) << 23);  // around f16's range
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    const uint16_t want = _cvtss_sh(f, 0);  // F16C, round to nearest even
    CHECK_MSG(float_to_half_bits(f) == want, "f16 of " << f << ": " << float_to_half_bits(f) << " vs " << want);
    CHECK_EQ(half_bits_to_float(want), _cvtsh_ss(want));
  }
  CHECK_EQ(float_to_bf16_bits(1.0f + 1.0f / 256), 0x3f80);  // tie to even
  CHECK_EQ(float_to_bf16_bits(1.0f + 3.0f / 256), 0x3f82);
  CHECK(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
}

TEST(embedding_gather_is_exact) {
  std::mt19937 rng(2);
  for (DType dt : kDtypes)
    for (auto [V, H, T] : {std::tuple{320, 64, 5}, {1000, 4096, 17}, {32000, 128, 64}}) {
      HalfData table = random_half(size_t(V) * H, dt, rng);
      std::vector<int32_t> ids(T);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % V);
      auto d_table = to_device(table.bits), d_ids = to_device(ids);
      auto out = poisoned(size_t(T) * H * 4);
      embedding_gather(dt, d_ids.get<int32_t>(), d_table.get(), out.get<float>(), T, H, nullptr);
      auto got = from_device<float>(out, size_t(T) * H);
      for (int t = 0; t < T; ++t)
        CHECK(std::memcmp(&got[size_t(t) * H], &table.values[size_t(ids[t]) * H], 4 * H) == 0);
    }
}

TEST(add_rms_norm_matches_reference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2, 2);
  for (DType dt : kDtypes)
    for (auto [T, H] : {std::pair{1, 64}, {7, 4096}, {33, 176}, {5, 5120}})
      for (int mode = 0; mode < 3; ++mode) {  // 0: no delta, 1: delta, 2: delta + row gather
        std::vector<float> h(size_t(T) * H), delta(size_t(T) * H), w(H);
        for (auto& x : h) x = u(rng);
        for (auto& x : delta) x = u(rng);
        for (auto& x : w) x = u(rng);
        std::vector<int32_t> rows;
        if (mode == 2) for (int r = T - 1; r >= 0; r -= 2) rows.push_back(r);
        const int R = mode == 2 ? static_cast<int>(rows.size()) : T;
        auto d_h = to_device(h), d_delta = to_device(delta), d_w = to_device(w), d_rows = to_device(rows);
        auto out = poisoned(size_t(R) * H * 2);
        add_rms_norm(dt, d_h.get<float>(), mode ? d_delta.get<float>() : nullptr, d_w.get<float>(),
                     mode == 2 ? d_rows.get<int32_t>() : nullptr, out.get(), R, H, 1e-5f, nullptr);
        auto got = to_floats(from_device<uint16_t>(out, size_t(R) * H), dt);
        auto got_h = from_device<float>(d_h, size_t(T) * H);
        std::vector<double> ref(size_t(R) * H), ref_h(h.begin(), h.end());
        for (int r = 0; r < R; ++r) {
          const int src = mode == 2 ? rows[r] : r;
          double ss = 0;
          std::vector<double> x(H);
          for (int i = 0; i < H; ++i) {
            x[i] = double(h[size_t(src) * H + i]) + (mode ? double(delta[size_t(src) * H + i]) : 0.0);
            ss += x[i] * x[i];
          }
          const double inv = 1.0 / std::sqrt(ss / H + 1e-5);
          for (int i = 0; i < H; ++i) ref[size_t(r) * H + i] = w[i] * x[i] * inv;
          if (mode == 1) for (int i = 0; i < H; ++i) ref_h[size_t(src) * H + i] = float(x[i]);
        }
        const double e = rel_err(got, ref), eh = rel_err(got_h, ref_h);
        CHECK_MSG(e <= half_tol(dt) && eh <= 1e-6, dtype_name(dt) << " T " << T << " H " << H << " mode " << mode
                                                                   << ": err " << e << ", residual err " << eh);
      }
}

TEST(silu_and_mul_matches_reference) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-6, 6);
  for (DType dt : kDtypes)
    for (auto [T, I] : {std::pair{1, 176}, {9, 11008}, {70, 352}}) {
      std::vector<float> gu(size_t(T) * 2 * I);
      for (auto& x : gu) x = u(rng);
      auto d_gu = to_device(gu);
      auto out = poisoned(size_t(T) * I * 2);
      silu_and_mul(dt, d_gu.get<float>(), out.get(), T, I, nullptr);
      auto got = to_floats(from_device<uint16_t>(out, size_t(T) * I), dt);
      std::vector<double> ref(size_t(T) * I);
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < I; ++i) {
          const double g = gu[size_t(t) * 2 * I + i], v = gu[size_t(t) * 2 * I + I + i];
          ref[size_t(t) * I + i] = g / (1 + std::exp(-g)) * v;
        }
      const double e = rel_err(got, ref);
      CHECK_MSG(e <= half_tol(dt), dtype_name(dt) << " T " << T << " I " << I << ": err " << e);
    }
}

// C = A . W^T against a double reference; ldc > N leaves a NaN margin that must survive.
static void check_gemm(bool lt) {
  std::mt19937 rng(lt ? 6 : 5);
  std::vector<std::tuple<int, int, int, int>> shapes = {{1, 64, 64, 0}, {5, 320, 128, 8}, {64, 64, 64, 0},
                                                        {70, 130, 176, 0}, {129, 200, 352, 16}, {300, 96, 1024, 0}};
  if (full_shapes()) shapes.insert(shapes.end(), {{16, 4096, 4096, 0}, {3, 32000, 64, 0}});
  for (DType dt : kDtypes)
    for (auto [M, N, K, pad] : shapes) {
      const int lda = K + pad, ldc = N + (pad ? 3 : 0);
      HalfData a = random_half(size_t(M) * lda, dt, rng), w = random_half(size_t(N) * K, dt, rng);
      auto d_a = to_device(a.bits), d_w = to_device(w.bits);
      auto c = poisoned(size_t(M) * ldc * 4);
      if (lt) gemm_cublaslt(dt, d_a.get(), lda, d_w.get(), c.get<float>(), ldc, M, N, K, nullptr);
      else gemm_mma(dt, d_a.get(), lda, d_w.get(), c.get<float>(), ldc, M, N, K, nullptr);
      auto got = from_device<float>(c, size_t(M) * ldc);
      std::vector<float> got_c(size_t(M) * N);
      std::vector<double> ref(size_t(M) * N);
      bool margin_ok = true;
      for (int m = 0; m < M; ++m) {
        for (int n = 0; n < N; ++n) {
          double s = 0;
          for (int k = 0; k < K; ++k) s += double(a.values[size_t(m) * lda + k]) * w.values[size_t(n) * K + k];
          ref[size_t(m) * N + n] = s;
          got_c[size_t(m) * N + n] = got[size_t(m) * ldc + n];
        }
        for (int n = N; n < ldc; ++n) margin_ok = margin_ok && std::isnan(got[size_t(m) * ldc + n]);
      }
      const double e = rel_err(got_c, ref);
      CHECK_MSG(e <= 1e-4 && margin_ok, (lt ? "cublaslt " : "mma ") << dtype_name(dt) << " M " << M << " N " << N
                                                                    << " K " << K << ": err " << e
                                                                    << (margin_ok ? "" : ", wrote past N"));
    }
}

TEST(gemm_mma_matches_reference) { check_gemm(false); }

// Batch invariance: row r of C is bit-identical whether the batch has 1, 8, 9, 16, 17 or 64
// rows (the small-M and the tiled kernel keep one summation order).
TEST(gemm_mma_rows_do_not_depend_on_m) {
  std::mt19937 rng(11);
  for (DType dt : kDtypes)
    for (auto [N, K] : {std::pair{130, 200}, {72, 264}}) {
      const int kRows = 64;
      HalfData a = random_half(size_t(kRows) * K, dt, rng), w = random_half(size_t(N) * K, dt, rng);
      auto d_a = to_device(a.bits), d_w = to_device(w.bits);
      auto full = poisoned(size_t(kRows) * N * 4);
      gemm_mma(dt, d_a.get(), K, d_w.get(), full.get<float>(), N, kRows, N, K, nullptr);
      const auto ref = from_device<float>(full, size_t(kRows) * N);
      for (int M : {1, 8, 9, 16, 17}) {
        auto c = poisoned(size_t(M) * N * 4);
        gemm_mma(dt, d_a.get(), K, d_w.get(), c.get<float>(), N, M, N, K, nullptr);
        const auto got = from_device<float>(c, size_t(M) * N);
        CHECK_MSG(std::memcmp(got.data(), ref.data(), got.size() * 4) == 0,
                  dtype_name(dt) << " N " << N << " K " << K << ": rows of an M " << M << " batch differ from M 64");
      }
    }
}

TEST(gemm_cublaslt_matches_reference) {
  if (!gemm_has_cublaslt()) SKIP("cuBLASLt is not in this build");
  check_gemm(true);
}

TEST(rope_and_cache_is_exact_and_writes_only_its_slots) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-3, 3);
  for (DType dt : kDtypes)
    for (auto [nh, nkv, d, theta] : {std::tuple{4, 4, 16, 1e4}, {8, 2, 8, 1e4}, {4, 1, 32, 1e6},
                                     {32, 8, 128, 1e4}, {16, 16, 64, 5e5}}) {
      ModelConfig c;
      c.head_dim = d;
      c.rope_theta = theta;
      const int T = 23, slots_total = 64, QO = nh * d, KVO = nkv * d, W = QO + 2 * KVO;
      std::vector<int32_t> pos(T);
      std::vector<int64_t> slots(T);
      std::vector<int64_t> perm(slots_total);
      for (int i = 0; i < slots_total; ++i) perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int t = 0; t < T; ++t) { pos[t] = static_cast<int32_t>(rng() % 5000); slots[t] = t == 3 ? -1 : perm[t]; }
      RopeTable rope;
      rope.init(c);
      rope.compute(c, pos.data(), T);
      std::vector<float> qkv(size_t(T) * W);
      for (auto& x : qkv) x = u(rng);
      auto d_qkv = to_device(qkv), d_cos = to_device(rope.cos), d_sin = to_device(rope.sin), d_slots = to_device(slots);
      auto q = poisoned(size_t(T) * QO * 2), kc = poisoned(size_t(slots_total) * KVO * 2),
           vc = poisoned(size_t(slots_total) * KVO * 2);
      rope_and_cache(dt, d_qkv.get<float>(), d_cos.get<float>(), d_sin.get<float>(), d_slots.get<int64_t>(), q.get(),
                     kc.get(), vc.get(), T, nh, nkv, d, nullptr);
      auto got_q = from_device<uint16_t>(q, size_t(T) * QO);
      auto got_k = from_device<uint16_t>(kc, size_t(slots_total) * KVO);
      auto got_v = from_device<uint16_t>(vc, size_t(slots_total) * KVO);
      std::vector<bool> written(slots_total, false);
      for (int t = 0; t < T; ++t) {
        std::vector<float> row(qkv.begin() + size_t(t) * W, qkv.begin() + size_t(t + 1) * W);
        apply_rope(row.data(), nh + nkv, d, &rope.cos[size_t(t) * d / 2], &rope.sin[size_t(t) * d / 2]);
        for (int i = 0; i < QO; ++i) CHECK_EQ(got_q[size_t(t) * QO + i], float_to_bits(row[i], dt));
        if (slots[t] < 0) continue;
        written[slots[t]] = true;
        for (int i = 0; i < KVO; ++i) {
          CHECK_EQ(got_k[slots[t] * KVO + i], float_to_bits(row[QO + i], dt));
          CHECK_EQ(got_v[slots[t] * KVO + i], float_to_bits(row[QO + KVO + i], dt));
        }
      }
      for (int s = 0; s < slots_total; ++s)
        if (!written[s]) CHECK(got_k[size_t(s) * KVO] == 0xffff && got_v[size_t(s) * KVO + KVO - 1] == 0xffff);
    }
}

int main(int argc, char** argv) { return cuda_test_main(argc, argv); }

#else
GYRE_SKIP_MAIN("no CUDA backend in this build")
#endif
