// Elementwise and per-row CPU kernels of the Llama/Mistral block: RMSNorm, rotary embedding,
// SiLU-and-mul. Each mirrors Hugging Face's float32 arithmetic step by step.
#pragma once
#include <cstdint>
#include <vector>

#include "gyre/config.h"

namespace gyre {

// out[t] = w * (x[t] * rsqrt(mean(x[t]^2) + eps)); x, out: [T, H]; w: [H]
void rms_norm_row(const float* x, const float* w, int H, float eps, float* out);

// Rotary tables for a set of positions: cos/sin [T, head_dim/2].
struct RopeTable {
  std::vector<float> inv_freq;  // [head_dim/2]
  std::vector<float> cos, sin;  // [T, head_dim/2]
  void init(const ModelConfig& c);
  void compute(const ModelConfig& c, const int32_t* positions, int T);
};

// Rotates heads in place, pairing dim i with i + d/2 (HF rotate_half). x: [num_heads, d].
void apply_rope(float* x, int num_heads, int d, const float* cos, const float* sin);

// gate[i] = silu(gate[i]) * up[i], for i in [0, n)
void silu_mul(float* gate, const float* up, int64_t n);

}  // namespace gyre
