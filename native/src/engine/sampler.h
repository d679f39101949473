// Picks each sequence's next token from its logits row.
//
// Order (as Hugging Face's warpers): penalties (repetition over prompt + output; presence and
// frequency over output), then greedy (temperature 0: argmax, ties to the lowest id) or
// temperature, top-k, top-p, min-p, and one draw. The draw's uniform number is a hash of
// (seed, output index), so a seed gives the same tokens whatever else runs, preemption included.
// Logprobs are those of the raw model distribution (log_softmax of the unmodified logits), as
// vLLM reports by default: penalties and temperature change what is drawn, not what is reported.
// An allowed-token mask (structured output) comes first of all, as in vLLM: disallowed logits
// become -inf before the penalties, the warpers, the draw and the logprobs.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/vocab_ops.h"
#include "gyre/engine.h"
#include "gyre/sampling.h"

namespace gyre {

// Temperature at or below 1e-5, or top_k 1: argmax.
bool sampling_is_greedy(const SamplingParams& params);

// Uniform double in [0, 1) from a counter-based hash: the same (seed, counter), the same number.
double seeded_uniform(uint64_t seed, uint64_t counter);

// Applies the penalties of `params` to logits [vocab_size] in place. tokens: prompt then output.
void apply_penalties(float* logits, int vocab_size, const SamplingParams& params,
                     const std::vector<int32_t>& tokens, int num_prompt_tokens);

class Sampler {
 public:
  explicit Sampler(int vocab_size);

  // logits: [vocab_size], the raw row of this sequence. tokens: prompt then output so far.
  // mask: [ceil(vocab_size / 32)] allowed-token bits, or null; it must allow some token.
  SampledToken sample(const float* logits, const SamplingParams& params, const std::vector<int32_t>& tokens,
                      int num_prompt_tokens, uint64_t seed, const uint32_t* mask = nullptr);

 private:
  int32_t draw(const SamplingParams& params, double uniform, const uint32_t* mask);
  int top_p_prefix(int32_t* cand, int num_cand, bool sorted, float top_p);

  int vocab_size_;
  std::vector<float> logits_;         // [vocab], masked and penalized
  std::vector<float> masked_;         // [vocab], masked only (the logprobs of a masked row)
  std::vector<float> weights_;        // [vocab], exp((logit - max) / temperature)
  std::vector<int32_t> candidates_;   // token ids still in the running
  std::vector<float> block_sums_;     // the draw over the whole vocabulary
  std::vector<uint64_t> keys_;        // top-p: (weight, id) packed to sort as integers
};

}  // namespace gyre
