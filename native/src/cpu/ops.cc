#include "cpu/ops.h"

#include <cmath>

#include "cpu/simd.h"

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

void RopeTable::init(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  inv_freq.resize(half);
  for (int i = 0; i < half; ++i) {
    // HF: 1.0 / base ** (arange(0, dim, 2).float() / dim), in float32.
    float expo = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    float p = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(c.rope_theta)), static_cast<double>(expo)));
    inv_freq[i] = 1.0f / p;
  }
}

void RopeTable::compute(const ModelConfig& c, const int32_t* positions, int T) {
  const int half = c.head_dim / 2;
  cos.resize(static_cast<size_t>(T) * half);
  sin.resize(static_cast<size_t>(T) * half);
  for (int t = 0; t < T; ++t) {
    float pos = static_cast<float>(positions[t]);
    const float* freq = inv_freq.data();
    std::vector<float> dyn;
    if (c.rope_scaling == RopeScaling::kLinear) {
      pos = pos / static_cast<float>(c.rope_scaling_factor);
    } else if (c.rope_scaling == RopeScaling::kDynamic && positions[t] + 1 > c.max_position_embeddings) {
      // HF's dynamic NTK while decoding: the base grows with the sequence length (here per token).
      const double f = c.rope_scaling_factor, len = positions[t] + 1.0, d = c.head_dim;
      const double base = c.rope_theta * std::pow(f * len / c.max_position_embeddings - (f - 1), d / (d - 2));
      dyn.resize(half);
      for (int i = 0; i < half; ++i)
        dyn[i] = 1.0f / static_cast<float>(std::pow(base, static_cast<double>(2 * i) / d));
      freq = dyn.data();
    }
    for (int i = 0; i < half; ++i) {
      float angle = pos * freq[i];
      cos[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
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
