// The engine thread. step() is schedule -> forward -> sample -> report. Requests and aborts
// arrive under the mutex into pending lists; only the engine thread touches the scheduler, the
// block manager and the sequences, so the forward pass runs without holding the lock.
#include "gyre/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <unistd.h>

#include "engine/block_manager.h"
#include "engine/request_validation.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/vocab_ops.h"
#include "gyre/error.h"

namespace gyre {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kEos: return "eos";
    case FinishReason::kStopToken: return "stop_token";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

namespace {

constexpr int64_t kDefaultCpuKvBytes = 4LL << 30;  // default CPU pool, or a quarter of RAM if smaller
constexpr int kMaxDefaultSeqs = 256;               // ... and no more than this many full-length sequences

}  // namespace

class EngineImpl {
 public:
  EngineImpl(std::shared_ptr<ModelWeights> weights, const EngineOptions& options, Engine::OutputCallback on_output)
      : on_output_(std::move(on_output)), seed_rng_(std::random_device{}()) {
    if (options.max_num_seqs < 1 || options.max_num_batched_tokens < 1)
      throw Error("engine options: max_num_seqs and max_num_batched_tokens must be >= 1");
    backend_ = make_backend(options.backend, std::move(weights), options.num_threads);
    const ModelConfig& config = backend_->config();
    eos_token_ids_ = config.eos_token_ids;
    for (int32_t id : options.eos_token_ids) {
      if (id < 0 || id >= config.vocab_size)
        throw Error("engine options: EOS token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                    std::to_string(config.vocab_size) + ")");
      if (std::find(eos_token_ids_.begin(), eos_token_ids_.end(), id) == eos_token_ids_.end())
        eos_token_ids_.push_back(id);
    }
    max_model_len_ = options.max_model_len > 0 ? options.max_model_len
                     : config.max_position_embeddings > 0 ? config.max_position_embeddings : 2048;
    KvCacheSpec spec = options.kv;
    spec.step = StepPlan{options.max_num_seqs, options.max_num_batched_tokens, max_model_len_};
    if (spec.num_blocks == 0 && spec.max_tokens == 0 && spec.max_bytes == 0) {
      if (std::string(backend_->name()) == "cpu") {
        // A memory budget, as vLLM's CPU backend has (4 GiB); pages are touched only when used.
        const int64_t ram = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
        spec.max_bytes = std::min<int64_t>(kDefaultCpuKvBytes, std::max<int64_t>(ram / 4, 64LL << 20));
        const int64_t bytes_per_token = std::max<int64_t>(1, backend_->kv_bytes_per_block() / backend_->block_size());
        spec.max_bytes = std::min(spec.max_bytes, static_cast<int64_t>(max_model_len_) * kMaxDefaultSeqs * bytes_per_token);
      }  // the CUDA backend sizes an all-zero spec from its memory budget (spec.gpu_memory)
    }
    const int num_blocks = backend_->allocate_kv_cache(spec);
    block_manager_ = std::make_unique<BlockManager>(num_blocks, backend_->block_size(), config.sliding_window,
                                                    options.enable_prefix_caching);
    scheduler_ = std::make_unique<Scheduler>(SchedulerConfig{options.max_num_seqs, options.max_num_batched_tokens},
                                             *block_manager_);
    sampler_ = std::make_unique<Sampler>(config.vocab_size);
    limits_ = RequestLimits{config.vocab_size, max_model_len_, options.max_num_batched_tokens, config.sliding_window,
                            block_manager_->block_size(), block_manager_->num_blocks()};
    publish_stats();
    thread_ = std::thread(&EngineImpl::loop, this);
  }

  ~EngineImpl() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void submit(Request request) {
    validate_request(request, limits_);
    auto seq = std::make_unique<Sequence>();
    seq->id = request.id;
    seq->tokens = std::move(request.prompt);
    seq->num_prompt_tokens = seq->num_tokens();
    seq->params = std::move(request.params);
    seq->want_prompt_logits = request.prompt_logits || request.prompt_logprobs;
    seq->keep_prompt_logits = request.prompt_logits;
    seq->want_prompt_logprobs = request.prompt_logprobs;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!live_ids_.insert(seq->id).second)
        throw Error("request " + std::to_string(seq->id) + ": a request with this id is already running");
      seq->seed = seq->params.seed ? *seq->params.seed : seed_rng_();
      pending_.push_back(std::move(seq));
    }
    wake_.notify_one();
  }

  void abort(uint64_t id) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_aborts_.push_back(id);
    }
    wake_.notify_one();
  }

  void set_mask(uint64_t id, int output_index, std::vector<uint32_t> words) {
    const size_t num_words = (static_cast<size_t>(config().vocab_size) + 31) / 32;
    if (words.size() != num_words)
      throw Error("request " + std::to_string(id) + ": a token mask needs " + std::to_string(num_words) +
                  " words (vocabulary " + std::to_string(config().vocab_size) + "), got " +
                  std::to_string(words.size()));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!live_ids_.count(id)) return;
      PendingMask& m = masks_[id];
      m.output_index = output_index;
      m.words = std::move(words);
    }
    wake_.notify_one();
  }

  void set_grammar_busy(bool busy) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grammar_busy_ = busy;
    }
    wake_.notify_one();
  }

  EngineStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    EngineStats s = stats_;
    s.num_waiting += static_cast<int>(pending_.size());
    return s;
  }

  const ModelConfig& config() const { return backend_->config(); }
  const char* backend_name() const { return backend_->name(); }
  int max_model_len() const { return max_model_len_; }

 private:
  void loop() {
    for (;;) {
      std::vector<std::unique_ptr<Sequence>> added;
      std::vector<uint64_t> aborts;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || !pending_.empty() || !pending_aborts_.empty() || has_work(); });
        if (stop_) return;
        added.swap(pending_);
        aborts.swap(pending_aborts_);
      }
      for (auto& seq : added) scheduler_->add(std::move(seq));
      StepOutput out;
      try {
        out = step(aborts);
      } catch (const std::exception& e) {  // not the model's: a bug or out of memory
        out = StepOutput{};
        fail(scheduler_->sequence_ids(), e.what(), out);
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const SeqOutput& o : out.outputs) {
          if (o.finish == FinishReason::kNone) continue;
          live_ids_.erase(o.id);
          masks_.erase(o.id);
        }
        publish_stats();
      }
      if (!out.outputs.empty() && on_output_) {
        try {
          on_output_(std::move(out));
        } catch (...) {
          // The callback's failure is its own; the engine keeps serving.
        }
      }
    }
  }

  StepOutput step(const std::vector<uint64_t>& aborts) {
    StepOutput result;
    for (uint64_t id : aborts)
      if (auto seq = scheduler_->remove(id)) result.outputs.push_back(finished(*seq, FinishReason::kAbort));
    // Tokens sampled from held rows go out first: their next masks depend on them.
    if (sample_held(result)) return result;

    SchedulerOutput sched = scheduler_->schedule();
    if (sched.empty()) {
      // Nothing runs, nothing was preempted, and the first in line does not fit the empty pool:
      // it never will (submit() should have refused it). Fail it rather than spin.
      if (sched.preempted.empty() && scheduler_->num_running() == 0 && scheduler_->num_waiting() > 0)
        fail({scheduler_->first_waiting_id()}, "the KV cache cannot hold this request", result);
      return result;
    }
    scheduler_->build_batch(sched, batch_);
    const int vocab_size = config().vocab_size;
    // The backend samples where it can: every row stays on it unless prompt rows are wanted here
    // or a sequence is constrained by a grammar (its mask is applied by the CPU sampler).
    bool on_device = backend_->samples_on_device();
    for (const ScheduledSeq& s : sched.scheduled)
      on_device = on_device && s.num_prompt_rows == 0 && !s.seq->params.constrained;
    logits_.resize(on_device ? 0 : batch_.logits_indices.size() * static_cast<size_t>(vocab_size));
    try {
      backend_->forward(batch_, on_device ? nullptr : logits_.data());
      if (on_device) sample_on_backend(sched);
    } catch (const std::exception& e) {
      std::vector<uint64_t> running_ids;
      for (const Sequence* seq : scheduler_->running()) running_ids.push_back(seq->id);
      fail(running_ids, e.what(), result);
      return result;
    }
    ++num_steps_;
    for (const ScheduledSeq& s : sched.scheduled) {
      const int first = s.seq->num_computed_tokens;
      num_prompt_tokens_ += std::max(0, std::min(first + s.num_new_tokens, s.seq->num_prompt_tokens) - first);
    }
    scheduler_->update_computed(sched);
    take_masks(sched);
    for (size_t i = 0; i < sched.scheduled.size(); ++i)
      postprocess(sched.scheduled[i], on_device ? &device_sampled_[i] : nullptr, result);
    return result;
  }

  // Constrained sequences sample only with the mask of their next output position. Masks are
  // computed in JS from the previous step's tokens, normally during this step's forward pass; the
  // engine waits here (no polling) for those still missing, or for an abort or stop. While JS
  // compiles a grammar (grammar_busy_) it cannot post masks: a sequence whose mask is missing
  // then keeps its logits row and sits out (awaiting_mask) instead of stalling everyone else.
  void take_masks(const SchedulerOutput& sched) {
    waiting_.clear();
    for (const ScheduledSeq& s : sched.scheduled) {
      const Sequence& seq = *s.seq;
      if (s.sample_row >= 0 && seq.params.constrained && seq.num_output_tokens() < seq.params.max_tokens &&
          seq.mask_index != seq.num_output_tokens())
        waiting_.push_back(s.seq);
    }
    if (waiting_.empty()) return;
    std::unique_lock<std::mutex> lock(mutex_);
    auto settled = [&](const Sequence* seq) {
      return mask_ready(*seq) ||
             std::find(pending_aborts_.begin(), pending_aborts_.end(), seq->id) != pending_aborts_.end();
    };
    const auto t0 = std::chrono::steady_clock::now();
    wake_.wait(lock, [&] { return stop_ || grammar_busy_ || std::all_of(waiting_.begin(), waiting_.end(), settled); });
    mask_wait_us_ += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    const size_t vocab_size = config().vocab_size;
    for (Sequence* seq : waiting_) {
      if (mask_ready(*seq)) {
        take_mask(*seq);
      } else if (grammar_busy_ && !stop_ && !settled(seq)) {
        const ScheduledSeq& s = *std::find_if(sched.scheduled.begin(), sched.scheduled.end(),
                                              [&](const ScheduledSeq& x) { return x.seq == seq; });
        const float* row = logits_.data() + s.sample_row * vocab_size;
        seq->held_logits.assign(row, row + vocab_size);
        seq->awaiting_mask = true;
      }
    }
  }

  bool mask_ready(const Sequence& seq) const {  // under mutex_
    auto it = masks_.find(seq.id);
    return it != masks_.end() && it->second.output_index == seq.num_output_tokens();
  }

  void take_mask(Sequence& seq) {  // under mutex_, mask_ready(seq)
    PendingMask& m = masks_[seq.id];
    seq.mask.swap(m.words);
    seq.mask_index = seq.num_output_tokens();
    m.output_index = -1;
  }

  // Samples the held rows whose masks have come since; false if there were none.
  bool sample_held(StepOutput& result) {
    held_.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (Sequence* seq : scheduler_->running()) {
        if (!seq->awaiting_mask || !mask_ready(*seq)) continue;
        take_mask(*seq);
        held_.push_back(seq);
      }
    }
    for (Sequence* seq : held_) {
      seq->awaiting_mask = false;
      const std::vector<float> row = std::move(seq->held_logits);  // sample() may free seq
      seq->held_logits.clear();
      sample(*seq, row.data(), result);
    }
    return !held_.empty();
  }

  // Under mutex_: something for step() to do besides waiting for masks.
  bool has_work() const {
    if (scheduler_->num_waiting() > 0) return true;
    for (const Sequence* seq : scheduler_->running())
      if (!seq->awaiting_mask || mask_ready(*seq)) return true;
    return false;
  }

  bool wants_token(const ScheduledSeq& s) const {
    return s.sample_row >= 0 && s.seq->num_output_tokens() < s.seq->params.max_tokens;
  }

  // device_sampled_[i]: the token of sched.scheduled[i], sampled by the backend.
  void sample_on_backend(const SchedulerOutput& sched) {
    sample_requests_.clear();
    for (const ScheduledSeq& s : sched.scheduled)
      if (wants_token(s))
        sample_requests_.push_back(
            SampleRequest{s.sample_row, &s.seq->params, &s.seq->tokens, s.seq->num_prompt_tokens, s.seq->seed});
    std::vector<SampledToken> sampled;
    backend_->sample(sample_requests_, sampled);
    device_sampled_.assign(sched.scheduled.size(), SampledToken{});
    size_t k = 0;
    for (size_t i = 0; i < sched.scheduled.size(); ++i)
      if (wants_token(sched.scheduled[i])) device_sampled_[i] = std::move(sampled.at(k++));
  }

  // Collects prompt logits, samples where the chunk reached the end, and finishes sequences.
  // sampled: the backend's token for this sequence, or null to sample logits_ here.
  void postprocess(const ScheduledSeq& s, SampledToken* sampled, StepOutput& result) {
    Sequence& seq = *s.seq;
    const size_t vocab_size = config().vocab_size;
    if (s.num_prompt_rows > 0) {
      const float* rows = logits_.data() + s.first_prompt_row * vocab_size;
      if (seq.keep_prompt_logits)
        seq.prompt_logits.insert(seq.prompt_logits.end(), rows, rows + s.num_prompt_rows * vocab_size);
      if (seq.want_prompt_logprobs) {
        logprob_scratch_.resize(vocab_size);
        for (int j = 0; j < s.num_prompt_rows; ++j) {
          const int pos = seq.num_prompt_logits_rows + j;
          if (pos + 1 >= seq.num_prompt_tokens) break;
          log_softmax(rows + j * vocab_size, static_cast<int>(vocab_size), logprob_scratch_.data());
          seq.prompt_logprobs.push_back(logprob_scratch_[static_cast<size_t>(seq.tokens[pos + 1])]);
        }
      }
      seq.num_prompt_logits_rows += s.num_prompt_rows;
    }
    if (s.sample_row < 0 || seq.awaiting_mask) return;
    sample(seq, sampled ? nullptr : logits_.data() + s.sample_row * vocab_size, result, sampled);
  }

  // Samples seq's next token from its logits row (or takes the backend's, `sampled`), or
  // finishes it at max_tokens, and reports it.
  void sample(Sequence& seq, const float* row, StepOutput& result, SampledToken* sampled = nullptr) {
    SeqOutput out;
    FinishReason finish = FinishReason::kNone;
    const SamplingParams& p = seq.params;
    const bool masked = p.constrained && seq.num_output_tokens() < p.max_tokens;
    if (masked && seq.mask_index != seq.num_output_tokens()) return;  // aborted or stopping: no mask came
    if (masked && std::none_of(seq.mask.begin(), seq.mask.end(), [](uint32_t w) { return w != 0; })) {
      fail({seq.id}, "the grammar allows no next token", result);
      return;
    }
    if (seq.num_output_tokens() >= p.max_tokens) {
      finish = FinishReason::kLength;  // max_tokens 0: prefill only
    } else {
      SampledToken t = sampled ? std::move(*sampled)
                               : sampler_->sample(row, p, seq.tokens, seq.num_prompt_tokens, seq.seed,
                                                  masked ? seq.mask.data() : nullptr);
      seq.tokens.push_back(t.token);
      ++num_generated_tokens_;
      out.tokens.push_back(t.token);
      if (p.logprobs >= 0) {
        out.logprobs.push_back(t.logprob);
        out.top.push_back(std::move(t.top));
      }
      finish = stop_reason(seq, t.token);
    }
    if (finish != FinishReason::kNone) {
      SeqOutput done = finished(*scheduler_->remove(seq.id), finish);
      if (finish == FinishReason::kEos || finish == FinishReason::kStopToken) done.stop_token = out.tokens.back();
      done.tokens = std::move(out.tokens);
      done.logprobs = std::move(out.logprobs);
      done.top = std::move(out.top);
      out = std::move(done);
    } else {
      out.id = seq.id;
      out.num_prompt_tokens = seq.num_prompt_tokens;
      out.num_cached_tokens = seq.num_cached_tokens;
    }
    result.outputs.push_back(std::move(out));
  }

  FinishReason stop_reason(const Sequence& seq, int32_t token) const {
    const SamplingParams& p = seq.params;
    const auto& eos = eos_token_ids_;
    if ((!p.ignore_eos || p.constrained) && std::find(eos.begin(), eos.end(), token) != eos.end())
      return FinishReason::kEos;
    if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end())
      return FinishReason::kStopToken;
    if (seq.num_output_tokens() >= p.max_tokens || seq.num_tokens() >= max_model_len_) return FinishReason::kLength;
    return FinishReason::kNone;
  }

  // Finishes the sequences with kError and the message; the engine goes on with the others.
  void fail(const std::vector<uint64_t>& ids, const std::string& message, StepOutput& result) {
    for (uint64_t id : ids) {
      if (std::unique_ptr<Sequence> seq = scheduler_->remove(id)) {
        result.outputs.push_back(finished(*seq, FinishReason::kError));
        result.outputs.back().error = message;
      }
    }
  }

  static SeqOutput finished(Sequence& seq, FinishReason reason) {
    SeqOutput out;
    out.id = seq.id;
    out.finish = reason;
    out.num_prompt_tokens = seq.num_prompt_tokens;
    out.num_cached_tokens = seq.num_cached_tokens;
    if (seq.keep_prompt_logits) out.prompt_logits = std::move(seq.prompt_logits);
    if (seq.want_prompt_logprobs) {
      out.prompt_logprobs = std::move(seq.prompt_logprobs);
      out.has_prompt_logprobs = true;
    }
    return out;
  }

  void publish_stats() {  // under mutex_
    stats_.num_running = scheduler_->num_running();
    stats_.num_waiting = scheduler_->num_waiting();
    stats_.num_preemptions = scheduler_->num_preemptions();
    stats_.num_blocks_total = block_manager_->num_blocks();
    stats_.num_blocks_used = block_manager_->num_used_blocks();
    stats_.num_blocks_free = block_manager_->num_free_blocks();
    stats_.num_blocks_cached = block_manager_->num_cached_blocks();
    stats_.prefix_cache_hit_tokens = block_manager_->prefix_hit_tokens();
    stats_.prefix_cache_query_tokens = block_manager_->prefix_query_tokens();
    stats_.num_blocks_released_window = block_manager_->num_released_window();
    stats_.num_steps = num_steps_;
    stats_.num_prompt_tokens = num_prompt_tokens_;
    stats_.num_generated_tokens = num_generated_tokens_;
    stats_.mask_wait_us = mask_wait_us_;
  }

  Engine::OutputCallback on_output_;
  std::unique_ptr<Backend> backend_;
  int max_model_len_ = 0;
  RequestLimits limits_;
  // Engine thread only:
  std::unique_ptr<BlockManager> block_manager_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Sampler> sampler_;
  std::vector<int32_t> eos_token_ids_;  // the config's and EngineOptions::eos_token_ids
  Batch batch_;
  std::vector<float> logits_;  // [batch_.logits_indices.size(), vocab]
  std::vector<float> logprob_scratch_;  // [vocab]
  std::vector<Sequence*> waiting_;     // constrained sequences whose mask this step has not come
  std::vector<Sequence*> held_;        // awaiting sequences whose mask came
  std::vector<SampleRequest> sample_requests_;
  std::vector<SampledToken> device_sampled_;  // [sched.scheduled.size()] when the backend samples
  int64_t num_steps_ = 0;
  int64_t num_prompt_tokens_ = 0;
  int64_t num_generated_tokens_ = 0;
  int64_t mask_wait_us_ = 0;           // written under mutex_ (take_masks holds it)
  // Shared, under mutex_:
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> pending_;
  std::vector<uint64_t> pending_aborts_;
  std::unordered_set<uint64_t> live_ids_;
  struct PendingMask {
    int output_index = -1;          // -1: taken
    std::vector<uint32_t> words;
  };
  std::unordered_map<uint64_t, PendingMask> masks_;  // by request id
  bool grammar_busy_ = false;          // JS is compiling a grammar: late masks may be very late
  std::mt19937_64 seed_rng_;
  EngineStats stats_;
  bool stop_ = false;
  std::thread thread_;
};

Engine::Engine(std::shared_ptr<ModelWeights> weights, const EngineOptions& options, OutputCallback on_output)
    : impl_(std::make_unique<EngineImpl>(std::move(weights), options, std::move(on_output))) {}
Engine::~Engine() = default;
void Engine::submit(Request request) { impl_->submit(std::move(request)); }
void Engine::abort(uint64_t id) { impl_->abort(id); }
void Engine::set_grammar_busy(bool busy) { impl_->set_grammar_busy(busy); }
void Engine::set_mask(uint64_t id, int output_index, std::vector<uint32_t> words) {
  impl_->set_mask(id, output_index, std::move(words));
}
EngineStats Engine::stats() const { return impl_->stats(); }
const ModelConfig& Engine::config() const { return impl_->config(); }
const char* Engine::backend_name() const { return impl_->backend_name(); }
int Engine::max_model_len() const { return impl_->max_model_len(); }

}  // namespace gyre
