// Loops over one vocabulary-sized logits row, run for every sampled sequence every step. Written
// so the compiler vectorizes them without fast-math: every result is deterministic.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

namespace gyre {

// e^x for -87 <= x <= 0 as 2^n * e^f (n = round(x / ln 2), |f| <= ln2 / 2), f = x - n ln2 with
// ln2 split in two (Cody-Waite) so it stays exact, e^f by its series to degree 7: relative error
// < 1e-6. Branch-free and without a float-to-int conversion, so loops over it vectorize.
inline float exp_nonpositive(float x) {
  const float shifted = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: round() lands in the low bits
  const float n = shifted - 12582912.0f;
  const float f = (x - n * 0.693145751953125f) - n * 1.42860676533018e-06f;
  float p = 1.0f / 5040;
  p = p * f + 1.0f / 720;
  p = p * f + 1.0f / 120;
  p = p * f + 1.0f / 24;
  p = p * f + 1.0f / 6;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  int32_t shifted_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof(shifted_bits));
  const int32_t scale_bits = (shifted_bits - 0x4B400000 + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
  return p * scale;
}

// out[i] = e^((values[i] - max_value) * scale) for scale > 0 (0 below e^-87).
void exp_shifted(const float* values, int n, float max_value, float scale, float* out);

float max_value(const float* values, int n);

// Greedy: the lowest id holding the maximum.
int32_t first_max(const float* values, int n);

// Allowed-token masks, packed as the grammar engines (xgrammar) and GPU samplers take them:
// token t is allowed when bit t % 32 of mask[t / 32] is set. [ceil(n / 32)] words.
inline bool token_allowed(const uint32_t* mask, int32_t t) { return (mask[t >> 5] >> (t & 31)) & 1u; }
// values[t] = fill for every token t the mask does not allow.
void mask_values(float* values, int n, const uint32_t* mask, float fill);

// The k best of values[0, n) (descending, ties to the lowest id) into out[0, k); returns k.
int select_top(const float* values, int n, int k, int32_t* out);

// The draw over all of weights[0, n) (unnormalized): the first index where the running sum
// passes uniform * total. block_sums: scratch.
int pick_all(const float* weights, int n, double uniform, std::vector<float>& block_sums);

// log_softmax of logits [vocab_size] into out [vocab_size].
void log_softmax(const float* logits, int vocab_size, float* out);

}  // namespace gyre
