// Decode speed of a backend, straight through the model runner (no scheduler):
//   gyre_decode_bench MODEL_DIR [--batch B] [--prompt N] [--tokens M] [--backend cpu] [--threads T]
//                     [--quantization none|int8]
// Prefills B sequences of N tokens, then decodes M steps of B tokens; prints tokens/s as JSON.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gyre/backend.h"
#include "gyre/error.h"
#include "gyre/weights.h"

using namespace gyre;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--batch B] [--prompt N] [--tokens M] [--backend K] [--threads T] [--quantization none|int8]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1], kind = "cpu";
  int batch = 1, prompt = 16, tokens = 32, threads = 0;
  LoadOptions load;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--batch") batch = v;
    else if (a == "--prompt") prompt = v;
    else if (a == "--tokens") tokens = v;
    else if (a == "--threads") threads = v;
    else if (a == "--backend") kind = argv[i + 1];
    else if (a == "--quantization" && std::string(argv[i + 1]) == "int8") load.quantization = Quantization::kInt8;
    else if (a == "--quantization" && std::string(argv[i + 1]) == "none") load.quantization = Quantization::kNone;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  try {
    std::shared_ptr<ModelWeights> w = load_model(dir, load);
    auto be = make_backend(kind, w, threads);
    const int bs = 16, max_blocks = (prompt + tokens + bs - 1) / bs;
    KvCacheSpec spec;
    spec.block_size = bs;
    spec.num_blocks = max_blocks * batch;
    be->allocate_kv_cache(spec);
    const int V = w->config.vocab_size;
    std::vector<float> logits(static_cast<size_t>(batch) * V);
    auto run = [&](int start, int n) {
      Batch b;
      b.clear();
      for (int s = 0; s < batch; ++s) {
        for (int i = start; i < start + n; ++i) {
          b.token_ids.push_back(3 + (s * 131 + i * 17) % (V - 3));
          b.positions.push_back(i);
          b.slot_mapping.push_back(static_cast<int64_t>(s * max_blocks + i / bs) * bs + i % bs);
        }
        b.logits_indices.push_back(b.num_tokens() - 1);
        b.query_start.push_back(b.num_tokens());
        b.context_lens.push_back(start + n);
        for (int j = 0; j < max_blocks; ++j) b.block_tables.push_back(s * max_blocks + j);
      }
      b.max_blocks_per_seq = max_blocks;
      be->forward(b, logits.data());
    };
    // CPU time of the whole process (every thread) too: wall time means little on a shared machine.
    auto cpu_s = [] {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return ts.tv_sec + 1e-9 * ts.tv_nsec;
    };
    const double c0 = cpu_s();
    auto t0 = std::chrono::steady_clock::now();
    run(0, prompt);
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = cpu_s();
    for (int i = 0; i < tokens; ++i) run(prompt + i, 1);
    auto t2 = std::chrono::steady_clock::now();
    const double c2 = cpu_s();
    double prefill_s = std::chrono::duration<double>(t1 - t0).count();
    double decode_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf("{\"model\": \"%s\", \"backend\": \"%s\", \"dtype\": \"%s\", \"quantization\": \"%s\", \"batch\": %d, \"prompt\": %d, "
                "\"tokens\": %d, \"prefill_tokens_per_s\": %.1f, \"decode_tokens_per_s\": %.2f, "
                "\"decode_ms_per_step\": %.2f, \"prefill_cpu_s\": %.3f, \"decode_cpu_ms_per_step\": %.2f}\n",
                dir.c_str(), be->name(), dtype_name(w->dtype), quantization_name(w->quantization), batch, prompt, tokens, batch * prompt / prefill_s,
                batch * tokens / decode_s, 1000 * decode_s / tokens, c1 - c0, 1000 * (c2 - c1) / tokens);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_decode_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
