#include "engine/vocab_ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gyre {

namespace {

// Descending by value, ties by ascending id: a total order, so every sort here is deterministic.
struct ByValueDesc {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

}  // namespace

void exp_shifted(const float* values, int n, float max_value, float scale, float* out) {
  // Two loops: the clamp and the exponential each vectorize alone, not fused.
  for (int i = 0; i < n; ++i) out[i] = std::max((values[i] - max_value) * scale, -87.0f);
  for (int i = 0; i < n; ++i) out[i] = exp_nonpositive(out[i]);
}

float max_value(const float* values, int n) {
  constexpr int kLanes = 16;  // independent lanes instead of one dependency chain
  float lane[kLanes];
  std::fill(lane, lane + kLanes, values[0]);
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = std::max(lane[j], values[i + j]);
  float m = *std::max_element(lane, lane + kLanes);
  for (; i < n; ++i) m = std::max(m, values[i]);
  return m;
}

int32_t first_max(const float* values, int n) {
  const float m = max_value(values, n);
  const int32_t at = static_cast<int32_t>(std::find(values, values + n, m) - values);
  return at < n ? at : 0;  // a NaN maximum matches nothing
}

int select_top(const float* values, int n, int k, int32_t* out) {
  // A bounded heap: one compare per id for most of the vocabulary.
  const ByValueDesc better{values};
  k = std::min(k, n);
  std::iota(out, out + k, 0);
  std::make_heap(out, out + k, better);  // front: the worst kept
  for (int32_t id = k; id < n; ++id) {
    if (values[id] <= values[out[0]]) continue;  // a tie loses: its id is higher
    std::pop_heap(out, out + k, better);
    out[k - 1] = id;
    std::push_heap(out, out + k, better);
  }
  std::sort_heap(out, out + k, better);
  return k;
}

void mask_values(float* values, int n, const uint32_t* mask, float fill) {
  for (int w = 0; w * 32 < n; ++w) {
    const uint32_t bits = mask[w];
    if (bits == 0xffffffffu) continue;
    const int end = std::min(n, w * 32 + 32);
    for (int t = w * 32; t < end; ++t)
      if (!((bits >> (t & 31)) & 1u)) values[t] = fill;
  }
}

int pick_all(const float* weights, int n, double uniform, std::vector<float>& block_sums) {
  // Block sums (8 lanes each, so they vectorize) locate the block, a walk inside it the index.
  // The total and the walk use the same block sums.
  constexpr int kBlock = 64, kLanes = 8;
  const int num_blocks = (n + kBlock - 1) / kBlock;
  block_sums.resize(num_blocks);
  double total = 0.0;
  for (int b = 0; b < num_blocks; ++b) {
    const int begin = b * kBlock, end = std::min(n, begin + kBlock);
    float lane[kLanes] = {};
    int i = begin;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] += weights[i + j];
    float sum = 0.0f;
    for (int j = 0; j < kLanes; ++j) sum += lane[j];
    for (; i < end; ++i) sum += weights[i];
    block_sums[b] = sum;
    total += sum;
  }
  const double target = uniform * total;
  double mass = 0.0;
  int b = 0;
  while (b + 1 < num_blocks && mass + block_sums[b] <= target) mass += block_sums[b++];
  const int end = std::min(n, (b + 1) * kBlock);
  for (int i = b * kBlock; i < end; ++i) {
    mass += weights[i];
    if (target < mass) return i;
  }
  return end - 1;
}

void log_softmax(const float* logits, int vocab_size, float* out) {
  const float max_logit = max_value(logits, vocab_size);
  exp_shifted(logits, vocab_size, max_logit, 1.0f, out);
  double sum = 0.0;
  for (int i = 0; i < vocab_size; ++i) sum += out[i];
  const double log_z = max_logit + std::log(sum);
  for (int i = 0; i < vocab_size; ++i) out[i] = static_cast<float>(logits[i] - log_z);
}

}  // namespace gyre
