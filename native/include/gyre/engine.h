// The engine: continuous batching on its own thread. Requests go in with submit(); once per
// step, every sequence that produced something is reported through one callback call.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gyre/backend.h"
#include "gyre/sampling.h"

namespace gyre {

struct Request {
  uint64_t id = 0;
  std::vector<int32_t> prompt;   // token ids, used as given
  SamplingParams params;
  bool prompt_logits = false;    // return the logits of every prompt position
  bool prompt_logprobs = false;  // return log p(prompt[i + 1] | prompt[..i]) for every i
};

// Why a sequence ended. kEos: an EOS id of the model (config.json's or EngineOptions::eos_token_ids);
// kStopToken: one of params.stop_token_ids; kLength: max_tokens or the context.
enum class FinishReason { kNone = 0, kEos, kStopToken, kLength, kAbort, kError };
const char* finish_reason_name(FinishReason r);

// What one sequence produced in one step.
struct SeqOutput {
  uint64_t id = 0;
  std::vector<int32_t> tokens;              // new tokens this step (0 or 1 today)
  std::vector<float> logprobs;              // [tokens.size()] when params.logprobs >= 0
  std::vector<std::vector<TopLogprob>> top; // [tokens.size()][params.logprobs]
  FinishReason finish = FinishReason::kNone;
  int32_t stop_token = -1;                  // with kEos and kStopToken: the token that ended it
  std::string error;                        // with kError
  int num_prompt_tokens = 0;
  int num_cached_tokens = 0;                // prompt tokens served from the prefix cache
  std::vector<float> prompt_logits;         // [prompt.size(), vocab], with the last output
  std::vector<float> prompt_logprobs;       // [prompt.size() - 1], with the last output
  bool has_prompt_logprobs = false;         // the request asked for them (the list may be empty)
};

struct StepOutput {
  std::vector<SeqOutput> outputs;
};

struct EngineOptions {
  std::string backend = "auto";
  int num_threads = 0;                 // 0: all cores
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;   // token budget per step
  int max_model_len = 0;               // 0: the model's max_position_embeddings
  KvCacheSpec kv;                      // 0s: a default pool; kv.gpu_memory: the GPU budget
  bool enable_prefix_caching = true;
  // EOS ids besides the model config's (the tokenizer's, generation_config.json's): they end a
  // sequence with kEos as those do.
  std::vector<int32_t> eos_token_ids;
  LoadOptions load;                    // for whoever loads the weights (the addon, the tools)
};

struct EngineStats {
  int num_running = 0;
  int num_waiting = 0;
  int64_t num_preemptions = 0;
  int num_blocks_total = 0;
  int num_blocks_used = 0;     // referenced by some sequence
  int num_blocks_free = 0;     // not referenced (includes cached)
  int num_blocks_cached = 0;   // free but holding a reusable prefix
  int64_t prefix_cache_hit_tokens = 0;
  int64_t prefix_cache_query_tokens = 0;
  int64_t num_blocks_released_window = 0;  // released behind a sliding window
  int64_t num_steps = 0;
  int64_t num_prompt_tokens = 0;       // prompt tokens computed (not cached)
  int64_t num_generated_tokens = 0;
  int64_t mask_wait_us = 0;            // the engine thread's wait for token masks (structured output)
};

class EngineImpl;

class Engine {
 public:
  using OutputCallback = std::function<void(StepOutput&&)>;
  // Starts the engine thread. on_output runs on that thread, once per step with output.
  Engine(std::shared_ptr<ModelWeights> weights, const EngineOptions& options, OutputCallback on_output);
  ~Engine();  // stops the thread; unfinished requests are dropped
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Throws gyre::Error for an invalid request (empty prompt, token id out of range, too long).
  void submit(Request request);
  void abort(uint64_t id);   // takes effect at the next step; reported with kAbort
  // The allowed tokens of a constrained request's output token number output_index: bit t % 32 of
  // words[t / 32], ceil(vocab / 32) words. The engine samples that token only once this has come
  // (it waits for it after the forward pass). Ignored for a request that is not running. Throws
  // for a wrong length.
  void set_mask(uint64_t id, int output_index, std::vector<uint32_t> words);
  // While busy (the mask producer compiles a grammar and cannot post), a constrained sequence
  // whose mask is missing sits out with its logits row held, rather than making the step wait.
  void set_grammar_busy(bool busy);
  EngineStats stats() const;
  const ModelConfig& config() const;
  const char* backend_name() const;
  int max_model_len() const;

 private:
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace gyre
