// One request as the engine runs it: its tokens (prompt, then output) and how many of them the
// KV cache already holds. num_computed_tokens chases num_tokens(); prefill, chunked prefill,
// decode, prefix-cache hits and recompute after preemption are all just that chase.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/block_manager.h"
#include "gyre/sampling.h"

namespace gyre {

struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;   // prompt, then generated tokens
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;   // tokens whose K/V are in the cache
  SamplingParams params;
  uint64_t seed = 0;             // the sampler's per-request stream
  KvBlocks kv;

  bool admitted_once = false;
  int num_cached_tokens = 0;     // prompt tokens served from the prefix cache at first admission

  // Prompt rows are computed (no prefix-cache hit) when the request wants their logits or
  // logprobs; keep_prompt_logits returns the logits themselves.
  bool want_prompt_logits = false;
  bool keep_prompt_logits = false;
  bool want_prompt_logprobs = false;
  int num_prompt_logits_rows = 0;   // rows collected so far (positions 0..rows-1)
  std::vector<float> prompt_logits; // [num_prompt_logits_rows, vocab] when keep_prompt_logits
  std::vector<float> prompt_logprobs; // [num_prompt_tokens - 1]: log p(tokens[i + 1] | tokens[..i])

  // Constrained requests: the allowed-token mask of output token number mask_index.
  std::vector<uint32_t> mask;       // [ceil(vocab / 32)] packed bits
  int mask_index = -1;
  // Its mask was late while JS compiled a grammar: the row waits here, unscheduled, for it.
  bool awaiting_mask = false;
  std::vector<float> held_logits;   // [vocab]

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  bool prompt_logits_pending() const { return want_prompt_logits && num_prompt_logits_rows < num_prompt_tokens; }
};

}  // namespace gyre
