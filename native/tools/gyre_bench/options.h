// gyre_bench's command line (usage in main.cc).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gyre_bench {

struct Options {
  std::string shape = "llama-2-7b", quantization = "none", json_path, phases = "bandwidth,prefill,decode,kv,workload";
  std::string trace_path, write_trace_path, kv_budget, gpu_memory_budget, label;
  int layers = 0, context = 512, decode_steps = 20, prefill_reps = 5, requests_per_user = 2, min_requests = 8;
  int trace_size = 512;
  uint64_t trace_seed = 20261201;
  double time_limit_s = 0;
  bool skip_workload = false;
  std::vector<int> decode_batches{1, 8, 32, 64}, prefill_chunks{512, 2048}, users{1, 4, 16, 32, 64};
};

// false (after printing why) when the command line is bad; --help prints the usage and exits.
bool parse(int argc, char** argv, Options& o);
bool has_phase(const Options& o, const std::string& phase);

}  // namespace gyre_bench
