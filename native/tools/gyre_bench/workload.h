// The workload phase: the trace through gyre::Engine, replayed for each --users N by N
// closed-loop users (main.cc describes it).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "gyre/engine.h"
#include "gyre/gpu_memory.h"
#include "model.h"
#include "report.h"
#include "trace.h"

namespace gyre_bench {

struct Level {
  int users = 0, requests = 0, completed = 0, errors = 0, wrong_length = 0;
  double wall_s = 0, rps = 0, out_tok_s = 0, mean_latency_s = 0, p50_latency_s = 0, p99_latency_s = 0;
  double mean_ttft_s = 0, p50_ttft_s = 0, mean_tpot_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0, preemptions = 0, steps = 0;
  std::string first_error;
  bool skipped = false, partial = false;
  int aborted = 0;  // requests still running when the level stopped early, aborted
};

class WorkloadRunner {
 public:
  WorkloadRunner(std::shared_ptr<ModelWeights> w, const EngineOptions& opts) : vocab_(w->config.vocab_size) {
    engine_ = std::make_unique<Engine>(std::move(w), opts, [this](StepOutput&& out) { on_output(std::move(out)); });
  }
  Engine& engine() { return *engine_; }

  // Runs `count` requests with `users` closed-loop users; request i (0-based within the level) is
  // trace[(k0 + i) % size] with prompt ids of request number k0 + i. Past `deadline` (or after 120 s
  // without a finished request) it stops issuing, aborts what is still running and reports the
  // requests that finished (partial), so neither a time limit nor a stall loses the level.
  Level run(const std::vector<TraceEntry>& trace, uint64_t k0, int users, int count, int fixed_output = 0,
            Clock::time_point deadline = Clock::time_point::max());

 private:
  struct Live {
    Clock::time_point submitted, first_token, finished;
    int tokens = 0, expected = 0;
    std::string error;
  };
  void on_output(StepOutput&& out);

  int vocab_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Live> live_;
  std::vector<uint64_t> finished_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first, while the members it calls back into live
};

Json level_json(const Level& lv);

void bench_workload(Bench& b, const Model& m, const std::vector<TraceEntry>& trace, const std::string& trace_source,
                    const GpuMemoryOptions& gpu_memory);

}  // namespace gyre_bench
