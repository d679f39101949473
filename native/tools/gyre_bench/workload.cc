#include "workload.h"

#include <algorithm>
#include <cstdio>

namespace gyre_bench {

Level WorkloadRunner::run(const std::vector<TraceEntry>& trace, uint64_t k0, int users, int count, int fixed_output,
                          Clock::time_point deadline) {
  Level lv;
  lv.users = users;
  lv.requests = count;
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_.clear();
    finished_.clear();
  }
  const EngineStats before = engine_->stats();
  const auto t0 = Clock::now();
  int issued = 0, done = 0;
  std::vector<double> lat, ttft, tpot;
  auto submit = [&] {
    const uint64_t k = k0 + static_cast<uint64_t>(issued);
    const TraceEntry& e = trace[static_cast<size_t>(k % trace.size())];
    Request r;
    r.id = k + 1;  // ids start at 1
    r.prompt.resize(static_cast<size_t>(e.prompt));
    for (int j = 0; j < e.prompt; ++j) r.prompt[static_cast<size_t>(j)] = prompt_token(k, j, vocab_);
    r.params.temperature = 0;
    r.params.ignore_eos = true;
    r.params.max_tokens = fixed_output > 0 ? fixed_output : e.output;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Live& l = live_[r.id];
      l.submitted = Clock::now();
      l.expected = r.params.max_tokens;
    }
    lv.prompt_tokens += e.prompt;
    ++issued;
    try {
      engine_->submit(std::move(r));
    } catch (const std::exception& ex) {
      std::lock_guard<std::mutex> lock(mu_);
      Live& l = live_[k + 1];
      l.error = ex.what();
      l.finished = Clock::now();
      finished_.push_back(k + 1);
    }
  };
  for (int u = 0; u < std::min(users, count); ++u) submit();
  std::unique_lock<std::mutex> lock(mu_);
  auto partial = [&] {
    lv.partial = true;
    lv.first_error = "time limit: partial level (" + std::to_string(done) + " of " + std::to_string(count) +
                     " requests)";
  };
  while (done < count) {
    const auto stall = Clock::now() + std::chrono::seconds(120);
    if (!cv_.wait_until(lock, std::min(stall, deadline), [&] { return !finished_.empty(); })) {
      if (Clock::now() >= deadline) partial();
      else lv.first_error = "no request finished for 120 s";
      break;
    }
    std::vector<uint64_t> ids;
    ids.swap(finished_);
    for (uint64_t id : ids) {
      const Live l = live_[id];
      live_.erase(id);
      ++done;
      if (!l.error.empty()) {
        ++lv.errors;
        if (lv.first_error.empty()) lv.first_error = l.error;
      } else {
        ++lv.completed;
        const double total = std::chrono::duration<double>(l.finished - l.submitted).count();
        const double first = std::chrono::duration<double>(l.first_token - l.submitted).count();
        lat.push_back(total);
        ttft.push_back(first);
        if (l.tokens > 1) tpot.push_back((total - first) / (l.tokens - 1));
        lv.output_tokens += l.tokens;
        if (l.tokens != l.expected) ++lv.wrong_length;
      }
      if (issued < count && Clock::now() < deadline) {
        lock.unlock();
        submit();
        lock.lock();
      }
    }
  }
  lv.wall_s = seconds_since(t0);
  // Requests left running by a break: abort them and wait (at most 10 s) for their reports, so that
  // they do not share the engine with the next level.
  std::vector<uint64_t> left;
  for (const auto& kv : live_)
    if (kv.second.finished == Clock::time_point{}) left.push_back(kv.first);
  if (!left.empty()) {
    lock.unlock();
    for (uint64_t id : left) engine_->abort(id);
    lock.lock();
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (uint64_t id : left) {
        auto it = live_.find(id);
        if (it != live_.end() && it->second.finished == Clock::time_point{}) return false;
      }
      return true;
    });
    lv.aborted = static_cast<int>(left.size());
  }
  lock.unlock();
  const EngineStats after = engine_->stats();
  lv.preemptions = after.num_preemptions - before.num_preemptions;
  lv.steps = after.num_steps - before.num_steps;
  lv.rps = lv.completed / lv.wall_s;
  lv.out_tok_s = static_cast<double>(lv.output_tokens) / lv.wall_s;
  lv.mean_latency_s = mean(lat);
  lv.p50_latency_s = percentile(lat, 0.5);
  lv.p99_latency_s = percentile(lat, 0.99);
  lv.mean_ttft_s = mean(ttft);
  lv.p50_ttft_s = percentile(ttft, 0.5);
  lv.mean_tpot_s = mean(tpot);
  return lv;
}

void WorkloadRunner::on_output(StepOutput&& out) {
  const auto now = Clock::now();
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const SeqOutput& o : out.outputs) {
      auto it = live_.find(o.id);
      if (it == live_.end()) continue;
      Live& l = it->second;
      if (!o.tokens.empty() && l.tokens == 0) l.first_token = now;
      l.tokens += static_cast<int>(o.tokens.size());
      if (o.finish != FinishReason::kNone) {
        l.finished = now;
        if (o.finish == FinishReason::kError || o.finish == FinishReason::kAbort)
          l.error = std::string(finish_reason_name(o.finish)) + ": " + o.error;
        finished_.push_back(o.id);
        any = true;
      }
    }
  }
  if (any) cv_.notify_all();
}

Json level_json(const Level& lv) {
  Json j = Json::obj();
  j.set("users", lv.users);
  j.set("requests", lv.requests);
  j.set("completed", lv.completed);
  j.set("errors", lv.errors);
  if (!lv.first_error.empty()) j.set("first_error", lv.first_error);
  if (lv.partial) j.set_bool("partial", true);
  if (lv.aborted) j.set("aborted", lv.aborted);
  j.set("wrong_length", lv.wrong_length);
  j.set("wall_s", lv.wall_s);
  j.set("requests_per_s", lv.rps);
  j.set("output_tokens_per_s", lv.out_tok_s);
  j.set("prompt_tokens", lv.prompt_tokens);
  j.set("output_tokens", lv.output_tokens);
  j.set("mean_latency_s", lv.mean_latency_s);
  j.set("p50_latency_s", lv.p50_latency_s);
  j.set("p99_latency_s", lv.p99_latency_s);
  j.set("mean_ttft_s", lv.mean_ttft_s);
  j.set("p50_ttft_s", lv.p50_ttft_s);
  j.set("mean_tpot_s", lv.mean_tpot_s);
  j.set("engine_steps", lv.steps);
  j.set("preemptions", lv.preemptions);
  return j;
}

void bench_workload(Bench& b, const Model& m, const std::vector<TraceEntry>& trace, const std::string& trace_source,
                    const GpuMemoryOptions& gpu_memory) {
  Json levels = Json::arr();
  if (b.has("workload")) {
    try {
      Json w = Json::obj();
      int max_len = 0;
      double sum_p = 0, sum_o = 0;
      for (const TraceEntry& e : trace) { max_len = std::max(max_len, e.prompt + e.output); sum_p += e.prompt; sum_o += e.output; }
      w.set("trace", trace_source);
      w.set("trace_requests", static_cast<int>(trace.size()));
      w.set("trace_mean_prompt_tokens", sum_p / trace.size());
      w.set("trace_mean_output_tokens", sum_o / trace.size());
      w.set("requests_per_level", "max(" + std::to_string(b.o.min_requests) + ", " + std::to_string(b.o.requests_per_user) +
                                      " x users), one cursor over the trace across levels");
      w.set("sampling", "greedy, ignore_eos, exactly output_tokens new tokens");
      EngineOptions eo;
      eo.backend = "cuda";
      eo.kv.gpu_memory = gpu_memory;
      eo.max_model_len = std::max(2048, max_len);
      w.set("max_num_seqs", eo.max_num_seqs);
      w.set("max_num_batched_tokens", eo.max_num_batched_tokens);
      w.set("max_model_len", eo.max_model_len);
      w.set("prefix_caching", eo.enable_prefix_caching);
      const auto t0 = Clock::now();
      WorkloadRunner runner(m.weights, eo);
      w.set("engine_create_s", seconds_since(t0));
      const EngineStats st = runner.engine().stats();
      w.set("kv_blocks", st.num_blocks_total);
      b.phases.set("workload", w);
      b.save();
      int max_users = 1;
      for (int n : b.o.users) max_users = std::max(max_users, n);
      const int warm = std::min(8, max_users);
      const auto deadline = b.o.time_limit_s > 0
                                ? b.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(b.o.time_limit_s))
                                : Clock::time_point::max();
      const Level wl = runner.run(trace, uint64_t(1) << 30, warm, warm, 8, deadline);  // unmeasured warm-up
      w.set("warmup", level_json(wl));
      uint64_t k = 0;
      std::printf("%-6s %9s %12s %10s %10s %10s %7s\n", "users", "req/s", "out tok/s", "latency s", "TTFT s", "TPOT ms",
                  "errors");
      for (int n : b.o.users) {
        const int count = std::max(b.o.min_requests, b.o.requests_per_user * n);
        if (b.over_time()) {
          Json s = Json::obj();
          s.set("users", n);
          s.set("skipped", "time limit");
          levels.push(s);
          continue;
        }
        const Level lv = runner.run(trace, k, n, count, 0, deadline);
        k += static_cast<uint64_t>(count);
        levels.push(level_json(lv));
        w.set("levels", levels);
        b.phases.set("workload", w);
        b.save();
        std::printf("%-6d %9.2f %12.1f %10.3f %10.3f %10.2f %7d\n", n, lv.rps, lv.out_tok_s, lv.mean_latency_s,
                    lv.mean_ttft_s, lv.mean_tpot_s * 1e3, lv.errors);
        std::fflush(stdout);
        if (lv.errors > 0) ++b.failures;
      }
      w.set("levels", levels);
      b.phases.set("workload", w);
    } catch (const std::exception& e) {
      b.fail("workload", e.what());
    }
    b.save();
  }
}

}  // namespace gyre_bench
