// Per-request sampling parameters, as the engine's sampler applies them.
#pragma once
#include <cstdint>
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
  uint64_t seed = 0;
  bool has_seed = false;           // false: the engine draws one
  int max_tokens = 16;             // new tokens; 0 with prompt_logits: prefill only
  std::vector<int32_t> stop_token_ids;  // besides EOS
  bool ignore_eos = false;
  int logprobs = -1;               // -1: none; 0: the chosen token's; n: and the top n
  // Structured output: every token is drawn under an allowed-token mask posted for its position
  // (Engine::set_mask); EOS then always stops.
  bool constrained = false;
};

}  // namespace gyre
