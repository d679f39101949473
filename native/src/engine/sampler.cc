#include "engine/sampler.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>


namespace gyre {

namespace {

constexpr float kGreedyTemperature = 1e-5f;  // at or below: argmax
constexpr int kTopPSortSize = 64;  // top-p: below this many candidates, sort

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A candidate as one integer that sorts like (weight descending, id ascending): weights are
// non-negative, so their float bits order as integers.
uint64_t weight_key(float weight, int32_t id) {
  uint32_t bits;
  std::memcpy(&bits, &weight, sizeof(bits));
  return (static_cast<uint64_t>(bits) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}
float key_weight(uint64_t key) {
  const uint32_t bits = static_cast<uint32_t>(key >> 32);
  float weight;
  std::memcpy(&weight, &bits, sizeof(weight));
  return weight;
}
int32_t key_id(uint64_t key) { return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key)); }

// Index of the draw among ids[0, n): the first i where the running sum of weights passes
// uniform * total.
int pick(const float* weights, const int32_t* ids, int n, double uniform) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) total += weights[ids[i]];
  const double target = uniform * total;
  double mass = 0.0;
  for (int i = 0; i < n; ++i) {
    mass += weights[ids[i]];
    if (target < mass) return i;
  }
  return n - 1;
}

}  // namespace

// Top-p: moves the smallest most-likely set of cand[0, n) whose weight reaches top_p of the
// total to the front and returns its size. Ids that cannot be in it (n * weight <= the mass the
// set leaves out) are dropped first; the rest is a weighted quickselect that sorts only its end.
int Sampler::top_p_prefix(int32_t* cand, int n, bool sorted, float top_p) {
  const float* weights = weights_.data();
  double total = 0.0;
  for (int i = 0; i < n; ++i) total += weights[cand[i]];
  const double target = top_p * total;
  if (sorted) {
    double mass = 0.0;
    int m = 0;
    while (m < n && mass < target) mass += weights[cand[m++]];
    return std::max(m, 1);
  }
  const double tail_mass = (1.0 - top_p) * total;
  keys_.clear();
  for (int i = 0; i < n; ++i)
    if (static_cast<double>(n) * weights[cand[i]] > tail_mass) keys_.push_back(weight_key(weights[cand[i]], cand[i]));
  if (keys_.empty()) return 1;  // rounding only; cand[0] stands
  uint64_t* keys = keys_.data();
  const std::greater<uint64_t> ranks_above;
  int lo = 0, hi = static_cast<int>(keys_.size());  // the set is keys[0, m), lo < m <= hi
  double mass_above = 0.0;                           // of keys[0, lo), which rank above the rest
  while (hi - lo > kTopPSortSize) {
    const int mid = lo + (hi - lo) / 2;
    std::nth_element(keys + lo, keys + mid, keys + hi, ranks_above);
    double mass = mass_above;
    for (int i = lo; i <= mid; ++i) mass += key_weight(keys[i]);
    if (mass >= target) {
      hi = mid + 1;
    } else {
      mass_above = mass;
      lo = mid + 1;
    }
  }
  std::sort(keys + lo, keys + hi, ranks_above);
  int m = lo;
  while (m < hi && mass_above < target) mass_above += key_weight(keys[m++]);
  m = std::max(m, 1);
  // The draw walks the set most likely first: sort the part the quickselect left in its own
  // order, so the token depends on no library's nth_element (and the GPU sampler can match it).
  std::sort(keys, keys + std::min(lo, m), ranks_above);
  for (int i = 0; i < m; ++i) cand[i] = key_id(keys[i]);
  return m;
}

bool sampling_is_greedy(const SamplingParams& params) {
  return params.temperature <= kGreedyTemperature || params.top_k == 1;
}

double seeded_uniform(uint64_t seed, uint64_t counter) {
  const uint64_t x = splitmix64(splitmix64(seed) ^ splitmix64(counter + 0x632be59bd9b4e019ULL));
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

void apply_penalties(float* logits, int vocab_size, const SamplingParams& params,
                     const std::vector<int32_t>& tokens, int num_prompt_tokens) {
  auto in_vocab = [vocab_size](int32_t t) { return t >= 0 && t < vocab_size; };
  if (params.repetition_penalty != 1.0f) {
    // HF/CTRL: every distinct token seen (prompt or output) once; positive logits shrink.
    std::vector<int32_t> seen(tokens);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t t : seen) {
      if (!in_vocab(t)) continue;
      float& l = logits[t];
      l = l > 0 ? l / params.repetition_penalty : l * params.repetition_penalty;
    }
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    // OpenAI: logit -= frequency * count + presence * (count > 0), over output tokens only.
    std::vector<int32_t> output(tokens.begin() + std::min<size_t>(num_prompt_tokens, tokens.size()), tokens.end());
    std::sort(output.begin(), output.end());
    for (size_t i = 0; i < output.size();) {
      size_t j = i;
      while (j < output.size() && output[j] == output[i]) ++j;
      if (in_vocab(output[i]))
        logits[output[i]] -= params.frequency_penalty * static_cast<float>(j - i) + params.presence_penalty;
      i = j;
    }
  }
}

Sampler::Sampler(int vocab_size)
    : vocab_size_(vocab_size), logits_(vocab_size), weights_(vocab_size), candidates_(vocab_size) {}

SampledToken Sampler::sample(const float* logits, const SamplingParams& params, const std::vector<int32_t>& tokens,
                             int num_prompt_tokens, uint64_t seed, const uint32_t* mask) {
  const bool greedy = sampling_is_greedy(params);
  const bool penalized = params.repetition_penalty != 1.0f || params.presence_penalty != 0.0f ||
                         params.frequency_penalty != 0.0f;
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  if (mask) {
    masked_.assign(logits, logits + vocab_size_);
    mask_values(masked_.data(), vocab_size_, mask, kMasked);
    logits = masked_.data();
  }
  SampledToken out;
  if (greedy && !penalized) {
    out.token = first_max(logits, vocab_size_);
  } else {
    std::copy(logits, logits + vocab_size_, logits_.begin());
    apply_penalties(logits_.data(), vocab_size_, params, tokens, num_prompt_tokens);
  }
  if (greedy) {
    if (penalized) out.token = first_max(logits_.data(), vocab_size_);
  } else {
    const uint64_t output_index = static_cast<uint64_t>(tokens.size() - num_prompt_tokens);
    out.token = draw(params, seeded_uniform(seed, output_index), mask);
    // A draw's rounding can land past the last allowed token: take the most likely allowed one.
    if (mask && !token_allowed(mask, out.token)) out.token = first_max(logits_.data(), vocab_size_);
  }

  if (params.logprobs >= 0) {
    float* logprobs = weights_.data();  // scratch reuse: the draw is done
    log_softmax(logits, vocab_size_, logprobs);
    out.logprob = logprobs[out.token];
    const int num_top = std::min(params.logprobs, vocab_size_);
    if (num_top > 0) {
      select_top(logprobs, vocab_size_, num_top, candidates_.data());
      for (int i = 0; i < num_top; ++i) out.top.push_back({candidates_[i], logprobs[candidates_[i]]});
    }
  }
  return out;
}

int32_t Sampler::draw(const SamplingParams& params, double uniform, const uint32_t* mask) {
  const float* logits = logits_.data();
  float* weights = weights_.data();
  int32_t* cand = candidates_.data();
  const float inv_temperature = 1.0f / params.temperature;
  const bool use_top_k = params.top_k > 0 && params.top_k < vocab_size_;

  if (!use_top_k && params.top_p >= 1.0f && params.min_p <= 0.0f) {  // the whole vocabulary
    exp_shifted(logits, vocab_size_, max_value(logits, vocab_size_), inv_temperature, weights);
    if (mask) mask_values(weights, vocab_size_, mask, 0.0f);  // exp_shifted floors at e^-87, not 0
    return pick_all(weights, vocab_size_, uniform, block_sums_);
  }

  int num_cand = vocab_size_;
  if (use_top_k) {
    num_cand = select_top(logits, vocab_size_, params.top_k, cand);  // sorted
    const float max_logit = logits[cand[0]];
    for (int i = 0; i < num_cand; ++i)
      weights[cand[i]] = exp_nonpositive(std::max((logits[cand[i]] - max_logit) * inv_temperature, -87.0f));
    if (mask)
      for (int i = 0; i < num_cand; ++i)
        if (!token_allowed(mask, cand[i])) weights[cand[i]] = 0.0f;
  } else {
    exp_shifted(logits, vocab_size_, max_value(logits, vocab_size_), inv_temperature, weights);
    if (mask) mask_values(weights, vocab_size_, mask, 0.0f);
    std::iota(cand, cand + vocab_size_, 0);
  }

  if (params.top_p < 1.0f) num_cand = top_p_prefix(cand, num_cand, use_top_k, params.top_p);

  if (params.min_p > 0.0f) {
    // Relative to the most likely candidate, whose weight is e^0 = 1.
    int num_keep = 0;
    for (int i = 0; i < num_cand; ++i)
      if (weights[cand[i]] >= params.min_p) cand[num_keep++] = cand[i];
    num_cand = std::max(num_keep, 1);  // the max always passes, min_p being <= 1
  }
  return cand[pick(weights, cand, num_cand, uniform)];
}

}  // namespace gyre
