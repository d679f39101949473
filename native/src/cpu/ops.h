// Elementwise and per-row CPU kernels of the Llama/Mistral block: RMSNorm, rotary embedding
// (its tables: common/rope_table.h), SiLU-and-mul. Each mirrors Hugging Face's float32
// arithmetic step by step.
#pragma once
#include <cstdint>

namespace gyre {

// out[t] = w * (x[t] * rsqrt(mean(x[t]^2) + eps)); x, out: [T, H]; w: [H]
void rms_norm_row(const float* x, const float* w, int H, float eps, float* out);

// Rotates heads in place, pairing dim i with i + d/2 (HF rotate_half). x: [num_heads, d].
void apply_rope(float* x, int num_heads, int d, const float* cos, const float* sin);

// gate[i] = silu(gate[i]) * up[i], for i in [0, n)
void silu_mul(float* gate, const float* up, int64_t n);

}  // namespace gyre
