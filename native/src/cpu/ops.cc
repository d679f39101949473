#include "cpu/ops.h"

#include <cmath>

#include "common/simd.h"

namespace gyre {

void rms_norm_row(const float* x, const float* w, int H, float eps, float* out) {
  __m256 acc = _mm256_setzero_ps();
  const int H8 = H & ~7;
  for (int i = 0; i < H8; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  float ss = hsum(acc);
  for (int i = H8; i < H; ++i) ss = std::fma(x[i], x[i], ss);
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(H) + eps);
  for (int i = 0; i < H; ++i) out[i] = w[i] * (x[i] * r);
}

void apply_rope(float* x, int num_heads, int d, const float* cos, const float* sin) {
  const int half = d / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + h * d;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      const float a_cos = a * cos[i], b_sin = b * sin[i];
      const float b_cos = b * cos[i], a_sin = a * sin[i];
      v[i] = a_cos - b_sin;
      v[i + half] = b_cos + a_sin;
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

}  // namespace gyre
