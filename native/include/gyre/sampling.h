// Per-request sampling parameters, as the engine's sampler applies them. The addon reads them from
// the TypeScript SamplingParams (src/engine/native.ts), which has these fields and no others.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace gyre {

struct SamplingParams {
  float temperature = 1.0f;        // 0: greedy
  int top_k = 0;                   // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f; // 1: off (HF/CTRL style, over prompt and output)
  float presence_penalty = 0.0f;   // OpenAI style, over output tokens
  float frequency_penalty = 0.0f;  // OpenAI style, over output tokens
  std::optional<uint64_t> seed;    // absent: the engine draws one
  int max_tokens = 16;             // new tokens; 0 with prompt_logits: prefill only
  std::vector<int32_t> stop_token_ids;  // besides EOS; ends the sequence with FinishReason::kStopToken
  bool ignore_eos = false;
  int logprobs = -1;               // -1: none; 0: the chosen token's; n: and the top n
  // Structured output: every token is drawn under an allowed-token mask posted for its position
  // (Engine::set_mask); EOS then always stops.
  bool constrained = false;
};

struct TopLogprob {
  int32_t token;
  float logprob;
};

// One sampled token, as the engine's Sampler or a backend's device sampler returns it.
struct SampledToken {
  int32_t token = -1;
  float logprob = 0.0f;            // with params.logprobs >= 0
  std::vector<TopLogprob> top;     // params.logprobs entries, most likely first
};

// One row of a forward pass's logits to sample, with what the sampler needs besides the row.
struct SampleRequest {
  int row = 0;                               // logits row (index into batch.logits_indices)
  const SamplingParams* params = nullptr;
  const std::vector<int32_t>* tokens = nullptr;  // prompt, then output so far
  int num_prompt_tokens = 0;
  uint64_t seed = 0;
};

}  // namespace gyre
