#include "common/rope_table.h"

#include <cmath>

namespace gyre {

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

}  // namespace gyre
