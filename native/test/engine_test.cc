// The whole engine on the CPU backend and the reference fixtures: greedy tokens equal Hugging
// Face's, and every output is the same alone or under load (staggered arrivals, chunked
// prefill, preemption, prefix-cache hits), greedy and seeded alike.
#include "gyre/engine.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "check.h"
#include "gyre/error.h"
#include "gyre/weights.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

struct Result {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<std::vector<TopLogprob>> top;
  std::vector<float> prompt_logits;
  std::vector<float> prompt_logprobs;
  bool has_prompt_logprobs = false;
  FinishReason finish = FinishReason::kNone;
  int32_t stop_token = -1;
  int num_cached_tokens = 0;
};

// Collects outputs from the engine thread; tests wait on it (no sleeps).
class Collector {
 public:
  // Runs on the engine thread for every output, before it is recorded.
  std::function<void(const SeqOutput&)> on_each;

  Engine::OutputCallback callback() {
    return [this](StepOutput&& step) {
      if (on_each)
        for (const SeqOutput& o : step.outputs) on_each(o);
      std::lock_guard<std::mutex> lock(mutex_);
      for (SeqOutput& o : step.outputs) {
        Result& r = results_[o.id];
        r.tokens.insert(r.tokens.end(), o.tokens.begin(), o.tokens.end());
        r.logprobs.insert(r.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
        for (auto& t : o.top) r.top.push_back(t);
        num_tokens_ += static_cast<int>(o.tokens.size());
        if (o.finish != FinishReason::kNone) {
          r.finish = o.finish;
          r.stop_token = o.stop_token;
          r.num_cached_tokens = o.num_cached_tokens;
          r.prompt_logits = std::move(o.prompt_logits);
          r.prompt_logprobs = std::move(o.prompt_logprobs);
          r.has_prompt_logprobs = o.has_prompt_logprobs;
          ++num_finished_;
        }
      }
      changed_.notify_all();
    };
  }
  void wait_finished(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return num_finished_ >= n; });
  }
  void wait_tokens(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return num_tokens_ >= n || num_finished_ >= static_cast<int>(results_.size()); });
  }
  Result get(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return results_[id];
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, Result> results_;
  int num_finished_ = 0;
  int num_tokens_ = 0;
};

std::shared_ptr<ModelWeights> model(const std::string& name) {
  static std::map<std::string, std::shared_ptr<ModelWeights>> loaded;
  auto& w = loaded[name];
  if (!w) w = load_model(fixture_dir(name));
  return w;
}

EngineOptions cpu_options(int max_batched_tokens = 2048, int num_blocks = 0) {
  EngineOptions o;
  o.backend = "cpu";
  o.num_threads = 2;
  o.max_num_batched_tokens = max_batched_tokens;
  o.kv.num_blocks = num_blocks;
  return o;
}

Request greedy_request(uint64_t id, std::vector<int32_t> prompt, int max_tokens = 24) {
  Request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.ignore_eos = true;
  r.params.max_tokens = max_tokens;
  return r;
}

// Even ids greedy, odd ids seeded sampling.
Request mixed_request(uint64_t id, std::vector<int32_t> prompt) {
  Request r = greedy_request(id, std::move(prompt));
  if (id % 2) {
    r.params.temperature = 0.9f;
    r.params.top_p = 0.95f;
    r.params.top_k = 40;
    r.params.seed = 1000 + id;
  }
  return r;
}

// 32 prompts of mixed lengths (1-150): the fixture prompts and slices of them.
std::vector<std::vector<int32_t>> mixed_prompts(const std::string& name) {
  std::vector<Prompt> ref = load_prompts(name);
  std::vector<std::vector<int32_t>> out;
  for (const Prompt& p : ref) out.push_back(p.ids);
  const std::vector<int32_t>& longest = ref.back().ids;
  for (int i = 0; out.size() < 32; ++i) {
    const int len = 1 + (i * 37) % static_cast<int>(longest.size());
    const int start = (i * 13) % (static_cast<int>(longest.size()) - len + 1);
    out.emplace_back(longest.begin() + start, longest.begin() + start + len);
  }
  return out;
}

// Each request alone on a fresh engine, one after the other.
std::vector<Result> run_alone(const std::string& name, const std::vector<Request>& requests) {
  Collector c;
  Engine engine(model(name), cpu_options(), c.callback());
  for (size_t i = 0; i < requests.size(); ++i) {
    engine.submit(requests[i]);
    c.wait_finished(static_cast<int>(i) + 1);
  }
  std::vector<Result> out;
  for (const Request& r : requests) out.push_back(c.get(r.id));
  return out;
}

// Submits in groups of 4, each group once the engine has produced a few more tokens.
std::vector<Result> run_staggered(Engine& engine, Collector& c, const std::vector<Request>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i > 0 && i % 4 == 0) c.wait_tokens(static_cast<int>(i) * 3);
    engine.submit(requests[i]);
  }
  c.wait_finished(static_cast<int>(requests.size()));
  std::vector<Result> out;
  for (const Request& r : requests) out.push_back(c.get(r.id));
  return out;
}

void check_same(const std::vector<Result>& a, const std::vector<Result>& b) {
  CHECK_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK_MSG(a[i].tokens == b[i].tokens, "request " << i << " differs");
    CHECK_EQ(a[i].tokens.size(), 24u);
    CHECK(a[i].finish == FinishReason::kLength);
  }
}

// Structured output: constrained request 100 may draw only two tokens at output k, posted from
// the output callback as a grammar matcher in JS would post them.
std::vector<uint32_t> two_token_mask(int vocab_size, int k) {
  std::vector<uint32_t> mask((vocab_size + 31) / 32, 0u);
  for (int t : {(k * 7 + 3) % vocab_size, (k * 11 + 5) % vocab_size}) mask[t / 32] |= 1u << (t % 32);
  return mask;
}

Request constrained_request(uint64_t id, std::vector<int32_t> prompt) {
  Request r = greedy_request(id, std::move(prompt), 12);
  r.params.temperature = 1.0f;
  r.params.seed = 77;
  r.params.constrained = true;
  return r;
}

// Runs constrained request 100 beside unconstrained 1..3; busy: the mask producer says it is
// compiling, and posts nothing until the others have finished.
std::map<uint64_t, Result> run_constrained(const std::string& name, bool busy) {
  Collector c;
  Engine* engine_ptr = nullptr;
  c.on_each = [&](const SeqOutput& o) {
    if (o.id == 100 && o.finish == FinishReason::kNone && !o.tokens.empty()) {
      Result r = c.get(100);
      const int k = static_cast<int>(r.tokens.size() + o.tokens.size());
      engine_ptr->set_mask(100, k, two_token_mask(engine_ptr->config().vocab_size, k));
    }
  };
  Engine engine(model(name), cpu_options(), c.callback());
  engine_ptr = &engine;
  const int vocab_size = engine.config().vocab_size;
  std::vector<Prompt> ref = load_prompts(name);
  if (busy) engine.set_grammar_busy(true);
  engine.submit(constrained_request(100, ref[0].ids));
  if (!busy) engine.set_mask(100, 0, two_token_mask(vocab_size, 0));
  for (uint64_t id = 1; id <= 3; ++id) engine.submit(mixed_request(id, ref[id % ref.size()].ids));
  if (busy) {
    c.wait_finished(3);  // the others ran to the end while 100 waited for its first mask
    CHECK(c.get(100).tokens.empty());
    CHECK(c.get(100).finish == FinishReason::kNone);
    engine.set_mask(100, 0, two_token_mask(vocab_size, 0));
    engine.set_grammar_busy(false);
  }
  c.wait_finished(4);
  std::map<uint64_t, Result> out;
  for (uint64_t id : {1, 2, 3, 100}) out[id] = c.get(id);
  return out;
}

}  // namespace

TEST(constrained_sequences_follow_masks_and_wait_without_stalling_others) {
  const std::string name = "llama-mha";
  std::vector<Prompt> ref = load_prompts(name);
  std::vector<Request> plain;
  for (uint64_t id = 1; id <= 3; ++id) plain.push_back(mixed_request(id, ref[id % ref.size()].ids));
  std::vector<Result> alone = run_alone(name, plain);
  std::map<uint64_t, Result> together = run_constrained(name, false);
  std::map<uint64_t, Result> held = run_constrained(name, true);
  const int vocab_size = model(name)->config.vocab_size;
  for (uint64_t id = 1; id <= 3; ++id) {
    CHECK_MSG(together[id].tokens == alone[id - 1].tokens, "request " << id << " changed beside a constrained one");
    CHECK(held[id].tokens == alone[id - 1].tokens);
  }
  const Result& r = together[100];
  CHECK_EQ(r.tokens.size(), 12u);
  std::set<int32_t> drawn;
  for (size_t k = 0; k < r.tokens.size(); ++k) {
    const std::vector<uint32_t> mask = two_token_mask(vocab_size, static_cast<int>(k));
    CHECK_MSG((mask[r.tokens[k] / 32] >> (r.tokens[k] % 32)) & 1u, "token " << k << " is outside its mask");
    drawn.insert(r.tokens[k] == (static_cast<int>(k) * 7 + 3) % vocab_size);
  }
  CHECK_EQ(drawn.size(), 2u);                  // both tokens of a mask get drawn: the mask, not the model, decides
  CHECK(held[100].tokens == r.tokens);         // the held row samples as the fresh one would
}

TEST(greedy_matches_reference_alone) {
  for (const std::string& name : fixture_models()) {
    std::vector<Prompt> ref = load_prompts(name);
    std::vector<Request> requests;
    for (size_t k = 0; k < ref.size(); ++k) requests.push_back(greedy_request(k, ref[k].ids));
    std::vector<Result> out = run_alone(name, requests);
    for (size_t k = 0; k < ref.size(); ++k) {
      CHECK_MSG(out[k].tokens == ref[k].greedy, name << " prompt " << k << " greedy tokens differ");
      CHECK(out[k].finish == FinishReason::kLength);
    }
  }
}

TEST(staggered_chunked_batch_equals_alone) {
  const std::string name = "mistral-gqa-swa";
  std::vector<Request> requests;
  for (const auto& p : mixed_prompts(name)) requests.push_back(mixed_request(requests.size(), p));
  std::vector<Result> alone = run_alone(name, requests);
  Collector c;
  Engine engine(model(name), cpu_options(/*max_batched_tokens=*/40), c.callback());
  check_same(run_staggered(engine, c, requests), alone);
  const EngineStats s = engine.stats();
  CHECK(s.num_steps < 32 * 24 / 4);  // sequences really shared steps
  CHECK_EQ(s.num_generated_tokens, 32 * 24);
  CHECK_EQ(engine.stats().num_blocks_used, 0);
}

TEST(preemption_keeps_outputs) {
  // With and without the prefix cache (recompute may then hit its own freed blocks), and
  // behind a sliding window.
  for (const std::string name : {"llama-gqa-theta", "mistral-gqa-swa"}) {
    std::vector<Request> requests;
    for (const auto& p : mixed_prompts(name)) requests.push_back(mixed_request(requests.size(), p));
    std::vector<Result> alone = run_alone(name, requests);
    for (bool prefix_caching : {false, true}) {
      Collector c;
      EngineOptions o = cpu_options(/*max_batched_tokens=*/64, /*num_blocks=*/16);  // 256 token slots
      o.enable_prefix_caching = prefix_caching;
      Engine engine(model(name), o, c.callback());
      for (const Request& r : requests) engine.submit(r);
      c.wait_finished(static_cast<int>(requests.size()));
      std::vector<Result> batched;
      for (const Request& r : requests) batched.push_back(c.get(r.id));
      check_same(batched, alone);
      const EngineStats s = engine.stats();
      CHECK_MSG(s.num_preemptions > 0, name << " prefix_caching " << prefix_caching);
      CHECK_EQ(s.num_blocks_used, 0);
      CHECK_EQ(s.num_blocks_free, 16);
      CHECK_EQ(s.prefix_cache_hit_tokens > 0, prefix_caching);
    }
  }
}

TEST(shared_prefix_hits_the_cache) {
  const std::string name = "llama-mha";
  std::vector<int32_t> prefix = load_prompts(name)[3].ids;  // 100 tokens
  std::vector<int32_t> a = prefix, b = prefix;
  a.push_back(7);
  b.insert(b.end(), {9, 11});
  std::vector<Result> alone = run_alone(name, {greedy_request(1, b)});
  Collector c;
  EngineOptions o = cpu_options(/*max_batched_tokens=*/32);
  Engine engine(model(name), o, c.callback());
  engine.submit(greedy_request(0, a));
  c.wait_finished(1);
  engine.submit(greedy_request(1, b));
  c.wait_finished(2);
  CHECK(engine.stats().prefix_cache_hit_tokens > 0);
  CHECK_EQ(c.get(1).num_cached_tokens, 96);  // 6 full blocks of 16
  CHECK(c.get(1).tokens == alone[0].tokens);
}

TEST(sliding_window_releases_blocks) {
  const std::string name = "mistral-gqa-swa";
  std::vector<Prompt> ref = load_prompts(name);
  Collector c;
  Engine engine(model(name), cpu_options(/*max_batched_tokens=*/48), c.callback());
  engine.submit(greedy_request(0, ref[4].ids, /*max_tokens=*/200));
  c.wait_finished(1);
  Result r = c.get(0);
  CHECK_EQ(r.tokens.size(), 200u);
  CHECK((std::vector<int32_t>(r.tokens.begin(), r.tokens.begin() + 24) == ref[4].greedy));
  const EngineStats s = engine.stats();
  CHECK(s.num_blocks_released_window > 0);
  CHECK_EQ(s.num_blocks_used, 0);
}

TEST(abort_returns_blocks) {
  const std::string name = "llama-mha";
  std::vector<int32_t> prompt = load_prompts(name)[2].ids;
  Collector c;
  Engine::OutputCallback collect = c.callback();
  Engine* engine_ptr = nullptr;
  // Every third request is aborted at its first token: it cannot have finished by then.
  Engine engine(model(name), cpu_options(), [&](StepOutput&& step) {
    for (const SeqOutput& o : step.outputs)
      if (o.id % 3 == 0 && o.finish == FinishReason::kNone) engine_ptr->abort(o.id);
    collect(std::move(step));
  });
  engine_ptr = &engine;
  for (uint64_t id = 0; id < 30; ++id) {
    std::vector<int32_t> p = prompt;
    p[0] = 3 + static_cast<int32_t>(id);  // distinct prompts
    engine.submit(greedy_request(id, p, /*max_tokens=*/200));
  }
  c.wait_finished(30);
  int num_aborted = 0;
  for (uint64_t id = 0; id < 30; ++id) {
    const Result r = c.get(id);
    num_aborted += r.finish == FinishReason::kAbort;
    if (id % 3) CHECK_EQ(r.tokens.size(), 200u);
  }
  CHECK_EQ(num_aborted, 10);
  CHECK_EQ(engine.stats().num_blocks_used, 0);
  CHECK_EQ(engine.stats().num_running, 0);
}

TEST(prompt_logits_match_reference) {
  const std::string name = "llama-gqa-theta";
  std::vector<Prompt> ref = load_prompts(name);
  Collector c;
  Engine engine(model(name), cpu_options(/*max_batched_tokens=*/24), c.callback());
  Request r = greedy_request(0, ref[3].ids, /*max_tokens=*/0);
  r.prompt_logits = true;
  engine.submit(r);
  c.wait_finished(1);
  const Result out = c.get(0);
  CHECK(out.finish == FinishReason::kLength);
  CHECK(out.tokens.empty());
  CHECK_EQ(out.prompt_logits.size(), ref[3].logits.size());
  float max_diff = 0;
  for (size_t i = 0; i < out.prompt_logits.size(); ++i)
    max_diff = std::max(max_diff, std::abs(out.prompt_logits[i] - ref[3].logits[i]));
  CHECK_MSG(max_diff < 1e-4f, "max diff " << max_diff);
}

TEST(prompt_logprobs_match_reference_and_skip_the_prefix_cache) {
  const std::string name = "llama-gqa-theta";
  std::vector<Prompt> ref = load_prompts(name);
  const int V = model(name)->config.vocab_size;
  Collector c;
  Engine engine(model(name), cpu_options(/*max_batched_tokens=*/24), c.callback());
  // The same prompt twice: the second would hit the prefix cache, but logprobs need every row.
  for (uint64_t id : {0, 1}) {
    Request r = greedy_request(id, ref[3].ids, /*max_tokens=*/0);
    r.prompt_logprobs = true;
    engine.submit(r);
    c.wait_finished(static_cast<int>(id) + 1);
  }
  Request one = greedy_request(2, {ref[3].ids[0]}, /*max_tokens=*/1);
  one.prompt_logprobs = true;
  engine.submit(one);
  c.wait_finished(3);
  const size_t n = ref[3].ids.size();
  for (uint64_t id : {0, 1}) {
    const Result out = c.get(id);
    CHECK(out.has_prompt_logprobs && out.prompt_logits.empty());
    CHECK_EQ(out.prompt_logprobs.size(), n - 1);
    CHECK_EQ(out.num_cached_tokens, 0);
    for (size_t i = 0; i + 1 < n; ++i) {
      const float* x = ref[3].logits.data() + i * V;
      double m = x[0], z = 0;
      for (int v = 1; v < V; ++v) m = std::max(m, double(x[v]));
      for (int v = 0; v < V; ++v) z += std::exp(x[v] - m);
      const double want = x[ref[3].ids[i + 1]] - m - std::log(z);
      CHECK_MSG(std::fabs(out.prompt_logprobs[i] - want) < 1e-4, "position " << i << ": " << out.prompt_logprobs[i]
                                                                           << " vs " << want);
    }
  }
  CHECK(c.get(2).has_prompt_logprobs && c.get(2).prompt_logprobs.empty() && c.get(2).tokens.size() == 1);
}

TEST(stop_tokens_logprobs_and_validation) {
  const std::string name = "mistral-gqa-swa";
  std::vector<Prompt> ref = load_prompts(name);
  Collector c;
  Engine engine(model(name), cpu_options(), c.callback());
  Request eos = greedy_request(0, ref[3].ids);  // its greedy run contains EOS (2)
  eos.params.ignore_eos = false;
  Request stop = greedy_request(1, ref[1].ids);
  stop.params.stop_token_ids = {ref[1].greedy[5]};
  stop.params.logprobs = 2;
  engine.submit(eos);
  engine.submit(stop);
  c.wait_finished(2);
  const auto& g3 = ref[3].greedy;
  const size_t eos_at = std::find(g3.begin(), g3.end(), 2) - g3.begin();
  CHECK((c.get(0).tokens == std::vector<int32_t>(g3.begin(), g3.begin() + eos_at + 1)));
  CHECK(c.get(0).finish == FinishReason::kEos);
  CHECK_EQ(c.get(0).stop_token, 2);
  const Result s = c.get(1);
  const auto& g1 = ref[1].greedy;
  const size_t stop_at = std::find(g1.begin(), g1.end(), g1[5]) - g1.begin();
  CHECK_EQ(s.tokens.size(), stop_at + 1);
  CHECK(s.finish == FinishReason::kStopToken);
  CHECK_EQ(s.stop_token, g1[5]);
  CHECK_EQ(s.logprobs.size(), s.tokens.size());
  CHECK_EQ(s.top[0].size(), 2u);
  CHECK_EQ(s.top[0][0].token, s.tokens[0]);  // greedy picks the most likely
  CHECK_EQ(s.top[0][0].logprob, s.logprobs[0]);

  CHECK_THROWS_WITH(engine.submit(greedy_request(5, {})), "empty prompt");
  // At request 6's first token (so it is surely running): a second request 6 is refused.
  Request long_one = greedy_request(6, ref[0].ids, /*max_tokens=*/400);
  std::string duplicate_error;
  c.on_each = [&](const SeqOutput& o) {
    if (o.id != 6 || o.finish != FinishReason::kNone || !duplicate_error.empty()) return;
    try {
      engine.submit(long_one);
    } catch (const Error& e) {
      duplicate_error = e.what();
    }
    engine.abort(6);
    engine.abort(12345);  // unknown: ignored
  };
  engine.submit(long_one);
  c.wait_finished(3);
  CHECK(duplicate_error.find("already running") != std::string::npos);
  CHECK(c.get(6).finish == FinishReason::kAbort);
  CHECK_EQ(c.get(6).tokens.size(), 1u);
  CHECK_THROWS_WITH(engine.submit(greedy_request(5, {1, 320})), "outside the vocabulary");
  CHECK_THROWS_WITH(engine.submit(greedy_request(5, std::vector<int32_t>(500, 3), 24)), "exceeds max_model_len 512");
  CHECK_THROWS_WITH(engine.submit(greedy_request(5, std::vector<int32_t>(513, 3))), "prompt of 513 tokens");
  CHECK_EQ(std::string(finish_reason_name(FinishReason::kEos)), "eos");
  CHECK_EQ(std::string(finish_reason_name(FinishReason::kStopToken)), "stop_token");
}

// Each way a sequence ends is reported as itself: EOS (the config's, or one given in the options),
// a stop token id, max_tokens.
TEST(finish_reasons) {
  const std::string name = "mistral-gqa-swa";
  std::vector<Prompt> ref = load_prompts(name);
  const auto& g1 = ref[1].greedy;
  const int32_t extra_eos = g1[3];
  CHECK(std::find(g1.begin(), g1.begin() + 4, 2) == g1.begin() + 4);  // config.json's EOS comes later, if at all
  const size_t extra_at = std::find(g1.begin(), g1.end(), extra_eos) - g1.begin();
  EngineOptions options = cpu_options();
  options.eos_token_ids = {extra_eos, 2};
  Collector c;
  Engine engine(model(name), options, c.callback());

  Request eos = greedy_request(0, ref[1].ids);
  eos.params.ignore_eos = false;
  Request ignored = greedy_request(1, ref[1].ids, 8);  // ignore_eos: the extra EOS does not end it
  Request stop = greedy_request(2, ref[1].ids);        // an EOS id as a stop token, with ignore_eos
  stop.params.stop_token_ids = {extra_eos};
  Request both = greedy_request(3, ref[1].ids);        // EOS and stop token at once: EOS
  both.params.ignore_eos = false;
  both.params.stop_token_ids = {extra_eos};
  for (const Request& r : {eos, ignored, stop, both}) engine.submit(r);
  c.wait_finished(4);
  CHECK(c.get(0).finish == FinishReason::kEos);
  CHECK_EQ(c.get(0).stop_token, extra_eos);
  CHECK_EQ(c.get(0).tokens.size(), extra_at + 1);
  CHECK(c.get(1).finish == FinishReason::kLength);
  CHECK_EQ(c.get(1).stop_token, -1);
  CHECK((c.get(1).tokens == std::vector<int32_t>(g1.begin(), g1.begin() + 8)));
  CHECK(c.get(2).finish == FinishReason::kStopToken);
  CHECK_EQ(c.get(2).stop_token, extra_eos);
  CHECK_EQ(c.get(2).tokens.size(), extra_at + 1);
  CHECK(c.get(3).finish == FinishReason::kEos);

  EngineOptions bad = cpu_options();
  bad.eos_token_ids = {320};
  CHECK_THROWS_WITH(Engine(model(name), bad, c.callback()), "EOS token id 320 is outside the vocabulary [0, 320)");
}

GYRE_TEST_MAIN
