#include "cpu/gemm.h"

#include <algorithm>

#include "common/simd.h"
#include "gyre/error.h"

namespace gyre {
namespace {

constexpr int P = PackedLinear::kPanel;

// Eight weights of a panel row as float32.
struct F32Panel {
  const float* p;
  __m256 load(int64_t i) const { return _mm256_loadu_ps(p + i); }
};
struct I8Panel {
  const int8_t* p;
  __m256 load(int64_t i) const {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i))));
  }
};
template <bool kBf16>
struct HalfPanel {
  const uint16_t* p;
  __m256 load(int64_t i) const { return load8(p + i, kBf16); }
};

// TT tokens x NP panels (16 outputs each). acc[t][2 * n + h] holds outputs 8h..8h+7 of panel n.
// The unroll pragmas let GCC keep the accumulators in registers (without them it stores them
// to the stack on every iteration).
template <int TT, int NP, typename W>
inline void tile(const float* x, int ldx, int64_t K, const W& w, const float* scale, int64_t panel, float* y, int ldy,
                 int64_t out) {
  __m256 acc[TT][2 * NP];
  #pragma GCC unroll 8
  for (int t = 0; t < TT; ++t)
    #pragma GCC unroll 8
    for (int j = 0; j < 2 * NP; ++j) acc[t][j] = _mm256_setzero_ps();
  const int64_t panel_size = K * P;
  for (int64_t k = 0; k < K; ++k) {
    if constexpr (TT == 1) {
      // One token: convert and use each weight vector at once (8 accumulators + 2 temporaries);
      // holding all 2 * NP converted vectors first spills an accumulator to the stack.
      const __m256 xb = _mm256_broadcast_ss(x + k);
      #pragma GCC unroll 8
      for (int n = 0; n < NP; ++n) {
        acc[0][2 * n] = _mm256_fmadd_ps(xb, w.load((panel + n) * panel_size + k * P), acc[0][2 * n]);
        acc[0][2 * n + 1] = _mm256_fmadd_ps(xb, w.load((panel + n) * panel_size + k * P + 8), acc[0][2 * n + 1]);
      }
      continue;
    }
    __m256 wv[2 * NP];
    #pragma GCC unroll 8
    for (int n = 0; n < NP; ++n) {
      wv[2 * n] = w.load((panel + n) * panel_size + k * P);
      wv[2 * n + 1] = w.load((panel + n) * panel_size + k * P + 8);
    }
    #pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * ldx + k);
      #pragma GCC unroll 8
      for (int j = 0; j < 2 * NP; ++j) acc[t][j] = _mm256_fmadd_ps(xb, wv[j], acc[t][j]);
    }
  }
  if (scale) {
    #pragma GCC unroll 8
    for (int n = 0; n < NP; ++n) {
      const __m256 s0 = _mm256_loadu_ps(scale + (panel + n) * P), s1 = _mm256_loadu_ps(scale + (panel + n) * P + 8);
      #pragma GCC unroll 8
      for (int t = 0; t < TT; ++t) {
        acc[t][2 * n] = _mm256_mul_ps(acc[t][2 * n], s0);
        acc[t][2 * n + 1] = _mm256_mul_ps(acc[t][2 * n + 1], s1);
      }
    }
  }
  #pragma GCC unroll 8
  for (int t = 0; t < TT; ++t) {
    #pragma GCC unroll 8
    for (int n = 0; n < NP; ++n) {
      const int64_t o = (panel + n) * P;
      float* dst = y + t * ldy + o;
      if (o + P <= out) {
        _mm256_storeu_ps(dst, acc[t][2 * n]);
        _mm256_storeu_ps(dst + 8, acc[t][2 * n + 1]);
      } else {
        alignas(32) float tmp[P];
        _mm256_store_ps(tmp, acc[t][2 * n]);
        _mm256_store_ps(tmp + 8, acc[t][2 * n + 1]);
        for (int64_t i = 0; i < out - o; ++i) dst[i] = tmp[i];
      }
    }
  }
}

template <int TT, typename W>
inline void tile_row(const float* x, int ldx, int64_t K, const W& w, const float* scale, int64_t p_begin, int64_t p_end,
                     float* y, int ldy, int64_t out) {
  constexpr int NP = TT == 1 ? 4 : (TT == 2 ? 2 : 1);
  int64_t p = p_begin;
  for (; p + NP <= p_end; p += NP) tile<TT, NP>(x, ldx, K, w, scale, p, y, ldy, out);
  for (; p < p_end; ++p) tile<TT, 1>(x, ldx, K, w, scale, p, y, ldy, out);
}

template <typename W>
void run_tiles(const float* x, int T, int ldx, int64_t K, const W& w, const float* scale, int64_t p_begin,
               int64_t p_end, float* y, int ldy, int64_t out) {
  // A slab of panels stays in cache while every token tile passes over it.
  const int64_t slab = std::max<int64_t>(4, (512 * 1024) / (K * P * 4) / 4 * 4);
  for (int64_t pb = p_begin; pb < p_end; pb += slab) {
    const int64_t pe = std::min(p_end, pb + slab);
    int t = 0;
    for (; t + 6 <= T; t += 6) tile_row<6>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out);
    switch (T - t) {
      case 5: tile_row<5>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out); break;
      case 4: tile_row<4>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out); break;
      case 3: tile_row<3>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out); break;
      case 2: tile_row<2>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out); break;
      case 1: tile_row<1>(x + t * ldx, ldx, K, w, scale, pb, pe, y + t * ldy, ldy, out); break;
      default: break;
    }
  }
}

}  // namespace

PackedLinear::PackedLinear(const std::vector<const TensorView*>& parts, const std::vector<const TensorView*>& scales) {
  dtype_ = parts.at(0)->dtype;
  in_ = parts[0]->shape.at(1);
  for (const TensorView* t : parts) {
    if (t->dtype != dtype_ || t->shape.at(1) != in_) throw Error("PackedLinear: parts differ in dtype or width");
    out_ += t->shape[0];
  }
  const bool i8 = dtype_ == DType::kI8;
  if (i8 && scales.size() != parts.size()) throw Error("PackedLinear: I8 weights need one scale tensor per part");
  const int64_t panels = num_panels();
  const bool half = dtype_ == DType::kF16 || dtype_ == DType::kBF16;
  const size_t n = static_cast<size_t>(panels * in_ * P);
  if (half) half_.assign(n, 0);
  else if (i8) i8_.assign(n, 0), scale_.assign(static_cast<size_t>(panels * P), 0.0f);
  else full_.assign(n, 0.0f);
  int64_t o = 0;
  for (size_t part = 0; part < parts.size(); ++part) {
    const TensorView* t = parts[part];
    if (i8 && (scales[part]->dtype != DType::kF32 || scales[part]->numel() != t->shape[0]))
      throw Error("PackedLinear: an I8 part's scale must be F32 [" + std::to_string(t->shape[0]) + "]");
    for (int64_t r = 0; r < t->shape[0]; ++r, ++o) {
      const int64_t base = (o / P) * in_ * P + o % P;
      if (half) {
        const uint16_t* src = t->as<uint16_t>() + r * in_;
        for (int64_t k = 0; k < in_; ++k) half_[base + k * P] = src[k];
      } else if (i8) {
        const int8_t* src = t->as<int8_t>() + r * in_;
        for (int64_t k = 0; k < in_; ++k) i8_[base + k * P] = src[k];
        scale_[o] = scales[part]->as<float>()[r];
      } else {
        const float* src = t->as<float>() + r * in_;
        for (int64_t k = 0; k < in_; ++k) full_[base + k * P] = src[k];
      }
    }
  }
}

void PackedLinear::run(const float* x, int T, int ldx, float* y, int ldy, int64_t p_begin, int64_t p_end) const {
  switch (dtype_) {
    case DType::kF32: run_tiles(x, T, ldx, in_, F32Panel{full_.data()}, nullptr, p_begin, p_end, y, ldy, out_); break;
    case DType::kF16:
      run_tiles(x, T, ldx, in_, HalfPanel<false>{half_.data()}, nullptr, p_begin, p_end, y, ldy, out_);
      break;
    case DType::kBF16:
      run_tiles(x, T, ldx, in_, HalfPanel<true>{half_.data()}, nullptr, p_begin, p_end, y, ldy, out_);
      break;
    case DType::kI8: run_tiles(x, T, ldx, in_, I8Panel{i8_.data()}, scale_.data(), p_begin, p_end, y, ldy, out_); break;
    default: throw Error("PackedLinear: unsupported dtype");
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
