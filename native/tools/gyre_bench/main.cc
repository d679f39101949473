// gyre_bench: the CUDA backend's speed on a model of a real shape with random weights, in one
// process, no Node, no model files.
//
//   gyre_bench [--shape llama-2-7b|llama-2-13b|mistral-7b] [--layers N] [--quantization none|int8]
//              [--phases bandwidth,prefill,decode,kv,workload] [--skip-workload] [--json PATH]
//              [--decode-batches 1,8,32,64] [--context 512] [--decode-steps 20]
//              [--prefill-chunks 512,2048] [--prefill-reps 5]
//              [--kv-budget SIZE] [--gpu-memory-budget SIZE]
//              [--users 1,4,16,32,64] [--requests-per-user 2] [--min-requests 8]
//              [--trace FILE.jsonl | --trace-seed S --trace-size N] [--write-trace FILE.jsonl]
//              [--time-limit-s T] [--label TEXT]
//
// The model is "virtual": a ModelWeights of the shape's config whose tensors have dtype and shape
// but no host data (data == nullptr); the CUDA backend's upload fills such tensors with random
// normal values generated on the GPU. F16 everywhere, or with --quantization int8 every layer's
// linear weights I8 with an F32 scale per output row (embedding, norms and LM head stay F16).
//
// Phases (each one's failure is recorded in the JSON and the next one runs; the JSON is rewritten
// after every phase, so a run killed by a time limit keeps what it had):
//   bandwidth  device-to-device cudaMemcpyAsync of a 1 GiB buffer, CUDA events, median of 15;
//              GB/s counts bytes read + bytes written. The ceiling for decode.
//   prefill    one sequence's chunk of T tokens from position 0 (logits of the last token only),
//              wall time of backend->forward (it returns when the logits are on the host), median.
//              Reports the chunk's linear-layer FLOPs (and attention FLOPs apart); the summary
//              compares them with torch.matmul's rate on the same shapes (hf_peer.py).
//   decode     B sequences, each with --context tokens already in the KV cache (prefilled once, in
//              chunks of <= 2048 tokens), then decode steps of B tokens at position --context
//              (every timed step rewrites the same slot, so the context stays exactly --context + 1
//              keys). Median wall time per step, against the floor
//              (weight bytes + KV bytes read) / measured copy bandwidth.
//   kv         the KV pool the backend sizes for a memory budget of --kv-budget (default the A10G's
//              production budget, gyre::kA10gBudgetBytes: 0.9 x 23,028 MiB): tokens, and concurrent
//              960+80-token conversations.
//   workload   the seed workload through gyre::Engine: a trace of {prompt_tokens, output_tokens}
//              (greedy, ignore_eos, exactly output_tokens new tokens), replayed for each N in
//              --users by N closed-loop users (each submits its next request when its previous one
//              finished); max(--min-requests, --requests-per-user x N) requests per level, taken
//              from one cursor over the trace that continues across levels. requests/s, mean
//              latency, TTFT and TPOT ((latency - TTFT) / (tokens - 1)). The loop waits on the
//              engine's output callback (a condition variable, no polling); a level that reaches
//              --time-limit-s stops issuing, aborts its unfinished requests and is reported with
//              "partial": true (the requests that finished are counted).
//
// The trace: --trace FILE (JSON lines with prompt_tokens and output_tokens), or the built-in seeded
// generator (bench/README.md's workload in lengths only): user text lognormal (median 200, sigma
// 0.8), a 110-token system prompt on half the requests, ~12 tokens of chat template, prompt capped
// at 960; output lognormal (median 40, sigma 0.5) clamped to [8, 80]. --write-trace saves it for the
// transformers peer (native/scripts/hf_peer.py), which replays the same requests. Prompt token ids
// are a pure function of (request number, position): 3 + splitmix64(k << 20 | j) % (vocab - 3),
// where k counts requests from 0 over all levels, so no two requests share a prefix.
//
// Files: options (command line), trace (the workload's requests), model (the virtual model and
// what it must move), device (CUDA queries and copy bandwidth), phases (prefill, decode, kv on
// one backend), workload (closed-loop users through gyre::Engine), report (the JSON, rewritten
// after every phase), run (the phases in order).
#include <cstdio>
#include <string>
#include <vector>

#include "gyre/shapes.h"
#include "options.h"
#include "run.h"
#include "trace.h"

using namespace gyre_bench;

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  try {
    gyre::shape_config(o.shape);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: --shape: %s\n", e.what());
    return 2;
  }
  std::vector<TraceEntry> trace;
  std::string trace_source;
  try {
    if (!o.trace_path.empty()) {
      trace = read_trace(o.trace_path);
      trace_source = o.trace_path;
    } else {
      trace = generate_trace(o.trace_seed, o.trace_size);
      trace_source = "built-in generator, seed " + std::to_string(o.trace_seed);
    }
    if (!o.write_trace_path.empty()) write_trace(o.write_trace_path, trace);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: %s\n", e.what());
    return 1;
  }
  if (o.phases.empty() || o.phases == "none") return 0;  // only the trace was asked for
#ifdef GYRE_HAVE_CUDA
  try {
    return run(o, trace, trace_source);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: %s\n", e.what());
    return 1;
  }
#else
  std::fprintf(stderr, "gyre_bench: this build has no CUDA backend (nvcc was not found at build time); "
                       "the benchmark needs a CUDA GPU\n");
  return 2;
#endif
}
