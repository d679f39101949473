#include "cpu/gemm.h"

#include <algorithm>

#include "cpu/simd.h"

namespace gyre {
namespace {

// Weight row access, one type per storage dtype.
struct F32W {
  const float* w;
  int K;
  __m256 load(int64_t o, int k) const { return _mm256_loadu_ps(w + o * K + k); }
  float at(int64_t o, int k) const { return w[o * K + k]; }
};
template <bool kBf16>
struct HalfW {
  const uint16_t* w;
  int K;
  __m256 load(int64_t o, int k) const { return load8(w + o * K + k, kBf16); }
  float at(int64_t o, int k) const { return kBf16 ? bf16_to_float(w[o * K + k]) : half_to_float(w[o * K + k]); }
};

// TT tokens x TO outputs, one accumulator each.
template <int TT, int TO, typename W>
inline void tile(const float* x, int ldx, int K, const W& w, int64_t o0, float* y, int ldy) {
  __m256 acc[TT][TO];
  for (int t = 0; t < TT; ++t)
    for (int j = 0; j < TO; ++j) acc[t][j] = _mm256_setzero_ps();
  const int K8 = K & ~7;
  for (int k = 0; k < K8; k += 8) {
    __m256 wv[TO];
    for (int j = 0; j < TO; ++j) wv[j] = w.load(o0 + j, k);
    for (int t = 0; t < TT; ++t) {
      __m256 xv = _mm256_loadu_ps(x + t * ldx + k);
      for (int j = 0; j < TO; ++j) acc[t][j] = _mm256_fmadd_ps(wv[j], xv, acc[t][j]);
    }
  }
  for (int t = 0; t < TT; ++t) {
    for (int j = 0; j < TO; ++j) {
      float s = hsum(acc[t][j]);
      for (int k = K8; k < K; ++k) s = __builtin_fmaf(w.at(o0 + j, k), x[t * ldx + k], s);
      y[t * ldy + o0 + j] = s;
    }
  }
}

template <int TT, typename W>
inline void tile_row(const float* x, int ldx, int K, const W& w, int64_t o_begin, int64_t o_end, float* y,
                     int ldy) {
  constexpr int TO = TT <= 2 ? 4 : 2;
  int64_t o = o_begin;
  for (; o + TO <= o_end; o += TO) tile<TT, TO>(x, ldx, K, w, o, y, ldy);
  for (; o < o_end; ++o) tile<TT, 1>(x, ldx, K, w, o, y, ldy);
}

template <typename W>
void run(const float* x, int T, int K, int ldx, const W& w, int64_t o_begin, int64_t o_end, float* y, int ldy) {
  // Block outputs so a slab of W stays in cache while every token tile passes over it.
  const int64_t kBlock = std::max<int64_t>(4, (256 * 1024) / (static_cast<int64_t>(K) * 4) / 4 * 4);
  for (int64_t ob = o_begin; ob < o_end; ob += kBlock) {
    int64_t oe = std::min(o_end, ob + kBlock);
    int t = 0;
    for (; t + 4 <= T; t += 4) tile_row<4>(x + t * ldx, ldx, K, w, ob, oe, y + t * ldy, ldy);
    switch (T - t) {
      case 3: tile_row<3>(x + t * ldx, ldx, K, w, ob, oe, y + t * ldy, ldy); break;
      case 2: tile_row<2>(x + t * ldx, ldx, K, w, ob, oe, y + t * ldy, ldy); break;
      case 1: tile_row<1>(x + t * ldx, ldx, K, w, ob, oe, y + t * ldy, ldy); break;
      default: break;
    }
  }
}

}  // namespace

void linear_rows(const float* x, int T, int K, int ldx, const void* w, DType dtype, int64_t o_begin, int64_t o_end,
                 float* y, int ldy) {
  switch (dtype) {
    case DType::kF32: run(x, T, K, ldx, F32W{static_cast<const float*>(w), K}, o_begin, o_end, y, ldy); break;
    case DType::kF16:
      run(x, T, K, ldx, HalfW<false>{static_cast<const uint16_t*>(w), K}, o_begin, o_end, y, ldy);
      break;
    case DType::kBF16:
      run(x, T, K, ldx, HalfW<true>{static_cast<const uint16_t*>(w), K}, o_begin, o_end, y, ldy);
      break;
    default: break;
  }
}

void load_row_f32(const TensorView& m, int64_t row, float* out) {
  const int64_t K = m.shape.back();
  switch (m.dtype) {
    case DType::kF32: std::copy_n(m.as<float>() + row * K, K, out); break;
    case DType::kF16:
      for (int64_t k = 0; k < K; ++k) out[k] = half_to_float(m.as<uint16_t>()[row * K + k]);
      break;
    case DType::kBF16:
      for (int64_t k = 0; k < K; ++k) out[k] = bf16_to_float(m.as<uint16_t>()[row * K + k]);
      break;
    default: break;
  }
}

}  // namespace gyre
