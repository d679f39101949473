#include "options.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "gyre/gpu_memory.h"

namespace gyre_bench {

using gyre::parse_bytes;

namespace {

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(std::atoi(item.c_str()));
  return v;
}

const char* kUsage =
    "usage: gyre_bench [--shape llama-2-7b|llama-2-13b|mistral-7b] [--layers N] [--quantization none|int8]\n"
    "                  [--phases bandwidth,prefill,decode,kv,workload] [--skip-workload] [--json PATH]\n"
    "                  [--decode-batches 1,8,32,64] [--context 512] [--decode-steps 20]\n"
    "                  [--prefill-chunks 512,2048] [--prefill-reps 5] [--kv-budget SIZE] [--gpu-memory-budget SIZE]\n"
    "                  [--users 1,4,16,32,64] [--requests-per-user 2] [--min-requests 8]\n"
    "                  [--trace FILE.jsonl | --trace-seed S --trace-size N] [--write-trace FILE.jsonl]\n"
    "                  [--time-limit-s T] [--label TEXT]\n";

}  // namespace

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") { std::fputs(kUsage, stdout); std::exit(0); }
    if (a == "--skip-workload") { o.skip_workload = true; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "gyre_bench: %s needs a value\n%s", a.c_str(), kUsage); return false; }
    const std::string v = argv[++i];
    if (a == "--shape") o.shape = v;
    else if (a == "--layers") o.layers = std::atoi(v.c_str());
    else if (a == "--quantization") o.quantization = v;
    else if (a == "--json") o.json_path = v;
    else if (a == "--phases") o.phases = v;
    else if (a == "--decode-batches") o.decode_batches = int_list(v);
    else if (a == "--context") o.context = std::atoi(v.c_str());
    else if (a == "--decode-steps") o.decode_steps = std::atoi(v.c_str());
    else if (a == "--prefill-chunks") o.prefill_chunks = int_list(v);
    else if (a == "--prefill-reps") o.prefill_reps = std::atoi(v.c_str());
    else if (a == "--kv-budget") o.kv_budget = v;
    else if (a == "--gpu-memory-budget") o.gpu_memory_budget = v;
    else if (a == "--users") o.users = int_list(v);
    else if (a == "--requests-per-user") o.requests_per_user = std::atoi(v.c_str());
    else if (a == "--min-requests") o.min_requests = std::atoi(v.c_str());
    else if (a == "--trace") o.trace_path = v;
    else if (a == "--trace-seed") o.trace_seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--trace-size") o.trace_size = std::atoi(v.c_str());
    else if (a == "--write-trace") o.write_trace_path = v;
    else if (a == "--time-limit-s") o.time_limit_s = std::atof(v.c_str());
    else if (a == "--label") o.label = v;
    else { std::fprintf(stderr, "gyre_bench: unknown option %s\n%s", a.c_str(), kUsage); return false; }
  }
  for (const std::string* size : {&o.kv_budget, &o.gpu_memory_budget})
    if (!size->empty() && parse_bytes(*size) <= 0) {
      std::fprintf(stderr, "gyre_bench: '%s' is not a size (e.g. 20G, 512M, bytes)\n", size->c_str());
      return false;
    }
  if (o.quantization != "none" && o.quantization != "int8") {
    std::fprintf(stderr, "gyre_bench: --quantization must be none or int8\n");
    return false;
  }
  if (o.context < 1 || o.decode_steps < 1 || o.prefill_reps < 1 || o.trace_size < 1 || o.min_requests < 1 ||
      o.requests_per_user < 0) {
    std::fprintf(stderr, "gyre_bench: --context, --decode-steps, --prefill-reps, --trace-size, --min-requests must be >= 1\n");
    return false;
  }
  return true;
}

bool has_phase(const Options& o, const std::string& p) {
  if (p == "workload" && o.skip_workload) return false;
  std::stringstream ss(o.phases);
  for (std::string item; std::getline(ss, item, ',');)
    if (item == p) return true;
  return false;
}

}  // namespace gyre_bench
