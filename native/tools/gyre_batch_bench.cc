// Continuous batching pays: aggregate decode throughput of N concurrent sequences through the
// engine (scheduler, paged KV cache, sampler) against the same N run one after another.
//   gyre_batch_bench MODEL_DIR [--concurrency 1,4,16,64] [--prompt 32] [--tokens 64]
//                    [--backend cpu] [--threads 0] [--out FILE.json]
// Each request: a distinct prompt of --prompt ids, greedy, ignore_eos, --tokens new tokens.
// "one after another" time = N x the time of a single request measured alone. tokens/s counts
// every generated token over the whole run (prefill included); decode tok/s only the steps after
// every sequence has its first token.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "gyre/engine.h"
#include "gyre/weights.h"

using namespace gyre;

namespace {

struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  double decode_seconds = 0;  // from the last first token to the end: every sequence decoding
  int64_t decode_tokens = 0;
};

Run run_concurrent(std::shared_ptr<ModelWeights> weights, const EngineOptions& opts, int n, int prompt, int tokens,
                   uint64_t first_id) {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, started = 0;
  int64_t generated = 0, generated_at_all_started = 0;
  std::chrono::steady_clock::time_point all_started;
  std::vector<bool> seen(n, false);
  Engine engine(weights, opts, [&](StepOutput&& out) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& o : out.outputs) {
      generated += static_cast<int64_t>(o.tokens.size());
      if (!o.tokens.empty() && !seen[o.id - first_id]) {
        seen[o.id - first_id] = true;
        if (++started == n) {
          all_started = std::chrono::steady_clock::now();
          generated_at_all_started = generated;
        }
      }
      if (o.finish != FinishReason::kNone) ++done;
    }
    cv.notify_all();
  });
  const int V = weights->config.vocab_size;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    Request r;
    r.id = first_id + i;
    for (int j = 0; j < prompt; ++j) r.prompt.push_back(3 + static_cast<int>((r.id * 7919 + j * 131) % (V - 3)));
    r.params.temperature = 0;
    r.params.ignore_eos = true;
    r.params.max_tokens = tokens;
    engine.submit(std::move(r));
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == n; });
  const auto end = std::chrono::steady_clock::now();
  Run run;
  run.seconds = std::chrono::duration<double>(end - t0).count();
  run.tokens = generated;
  run.decode_seconds = std::chrono::duration<double>(end - all_started).count();
  run.decode_tokens = generated - generated_at_all_started;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--concurrency 1,4,16,64] [--prompt N] [--tokens M] [--backend K] "
                 "[--threads T] [--out FILE]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1], conc = "1,4,16,64", out_path;
  EngineOptions opts;
  opts.backend = "cpu";
  int prompt = 32, tokens = 64;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--concurrency") conc = v;
    else if (a == "--prompt") prompt = std::atoi(v.c_str());
    else if (a == "--tokens") tokens = std::atoi(v.c_str());
    else if (a == "--backend") opts.backend = v;
    else if (a == "--threads") opts.num_threads = std::atoi(v.c_str());
    else if (a == "--out") out_path = v;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  try {
    std::shared_ptr<ModelWeights> weights = load_model(dir);
    opts.max_model_len = prompt + tokens;
    std::vector<int> levels;
    std::stringstream ss(conc);
    for (std::string item; std::getline(ss, item, ',');) levels.push_back(std::atoi(item.c_str()));
    // Warm-up, then one request alone: the one-after-another baseline.
    run_concurrent(weights, opts, 1, prompt, 4, 1000000);
    const Run single = run_concurrent(weights, opts, 1, prompt, tokens, 2000000);
    std::string json = "{\"model\": \"" + dir + "\", \"prompt_tokens\": " + std::to_string(prompt) +
                       ", \"new_tokens\": " + std::to_string(tokens) + ", \"single_request_s\": " +
                       std::to_string(single.seconds) + ", \"levels\": [";
    std::printf("%-12s %14s %16s %10s %16s\n", "concurrency", "tokens/s", "sequential tok/s", "speedup",
                "decode tok/s");
    for (size_t i = 0; i < levels.size(); ++i) {
      const int n = levels[i];
      const Run r = run_concurrent(weights, opts, n, prompt, tokens, 3000000 + i * 1000);
      const double tps = r.tokens / r.seconds;
      const double seq_tps = static_cast<double>(n) * tokens / (n * single.seconds);
      const double decode_tps = r.decode_seconds > 0 ? r.decode_tokens / r.decode_seconds : 0;
      std::printf("%-12d %14.1f %16.1f %9.2fx %16.1f\n", n, tps, seq_tps, tps / seq_tps, decode_tps);
      json += std::string(i ? ", " : "") + "{\"concurrency\": " + std::to_string(n) + ", \"tokens_per_s\": " +
              std::to_string(tps) + ", \"sequential_tokens_per_s\": " + std::to_string(seq_tps) +
              ", \"speedup\": " + std::to_string(tps / seq_tps) + ", \"seconds\": " + std::to_string(r.seconds) +
              ", \"decode_tokens_per_s\": " + std::to_string(decode_tps) + "}";
    }
    json += "]}\n";
    if (!out_path.empty()) {
      FILE* f = std::fopen(out_path.c_str(), "w");
      if (!f) { std::fprintf(stderr, "cannot write %s\n", out_path.c_str()); return 1; }
      std::fputs(json.c_str(), f);
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_batch_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
