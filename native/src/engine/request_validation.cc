#include "engine/request_validation.h"

#include <algorithm>
#include <sstream>

#include "gyre/error.h"

namespace gyre {

namespace {

template <typename... Args>
Error request_error(uint64_t id, const Args&... args) {
  std::ostringstream os;
  os << "request " << id << ": ";
  (os << ... << args);
  return Error(os.str());
}

}  // namespace

void validate_request(const Request& r, const RequestLimits& limits) {
  const SamplingParams& p = r.params;
  const int num_prompt = static_cast<int>(r.prompt.size());
  if (num_prompt == 0) throw request_error(r.id, "empty prompt");
  for (int i = 0; i < num_prompt; ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= limits.vocab_size)
      throw request_error(r.id, "prompt token ", r.prompt[i], " at position ", i, " is outside the vocabulary [0, ",
                          limits.vocab_size, ")");
  if (p.max_tokens < 0) throw request_error(r.id, "max_tokens ", p.max_tokens, " is negative");
  if (num_prompt > limits.max_model_len)
    throw request_error(r.id, "prompt of ", num_prompt, " tokens exceeds max_model_len ", limits.max_model_len);
  if (num_prompt + p.max_tokens > limits.max_model_len)
    throw request_error(r.id, "prompt of ", num_prompt, " tokens + max_tokens ", p.max_tokens, " = ",
                        num_prompt + p.max_tokens, " exceeds max_model_len ", limits.max_model_len);
  if (!(p.temperature >= 0)) throw request_error(r.id, "temperature ", p.temperature, " is negative");
  if (p.top_k < 0) throw request_error(r.id, "top_k ", p.top_k, " is negative");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw request_error(r.id, "top_p ", p.top_p, " is outside (0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) throw request_error(r.id, "min_p ", p.min_p, " is outside [0, 1]");
  if (!(p.repetition_penalty > 0))
    throw request_error(r.id, "repetition_penalty ", p.repetition_penalty, " must be > 0");
  if (p.logprobs > limits.vocab_size)
    throw request_error(r.id, "logprobs ", p.logprobs, " exceeds the vocabulary size ", limits.vocab_size);
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= limits.vocab_size)
      throw request_error(r.id, "stop token id ", t, " is outside the vocabulary [0, ", limits.vocab_size, ")");

  // A sequence alone must fit the pool, or preempting everyone else would never be enough.
  // Behind a sliding window it holds at most the window plus one step's chunk.
  int peak_tokens = num_prompt + p.max_tokens;
  if (limits.sliding_window > 0)
    peak_tokens = std::min(peak_tokens, limits.sliding_window + limits.max_num_batched_tokens + limits.block_size);
  const int num_needed = (peak_tokens + limits.block_size - 1) / limits.block_size;
  if (num_needed > limits.num_blocks)
    throw request_error(r.id, "needs ", num_needed, " KV blocks of ", limits.block_size, " tokens; the pool holds ",
                        limits.num_blocks);
}

}  // namespace gyre
