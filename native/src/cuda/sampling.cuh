// Sampling on the GPU: the engine's Sampler (engine/sampler.h) on logits that stay on the
// device, so only the chosen ids (and requested logprobs) come back. One block per row:
//
//   penalties (host-prepared distinct tokens) -> greedy argmax (ties to the lowest id)
//   or weights e^((l - max) / T) with the CPU's exp, then
//     whole vocabulary:  the CPU's 64-wide block sums and walk (pick_all), bit for bit
//     top-k / top-p / min-p: at most kMaxSampleCandidates candidates, found by radix select on
//       (value, id) keys, sorted as the CPU sorts them, then the CPU's walk over them
//   logprobs: log_softmax of the raw row, the chosen token's and the top n.
// The uniform number comes from the host (seeded_uniform(seed, output index)), so a seed gives
// the CPU's token. A row whose candidate set is larger than kMaxSampleCandidates (top_k > 1024,
// or a top-p / min-p set that wide) comes back with status 1 and the host samples it.
// Sums the CPU does in one long sequence over the whole vocabulary (the top-p total, the
// log-softmax normaliser) are tree sums here: equal up to double rounding.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace gyre {

constexpr int kMaxSampleCandidates = 1024;

struct DeviceSampleJob {
  int32_t row;               // logits row
  int32_t greedy;            // 1: argmax
  int32_t top_k;             // 0: off
  int32_t penalty_begin, num_penalties;  // into penalties
  int32_t num_top;           // logprobs: -1 none, 0 the chosen token's, n: and the top n
  int32_t top_begin;         // into top_ids / top_logprobs
  float inv_temperature, top_p, min_p;
  float repetition, presence, frequency;
  double uniform;
};

// One distinct token of a sequence: seen (prompt or output) for the repetition penalty, and its
// count in the output for presence / frequency.
struct DevicePenalty {
  int32_t token, seen, output_count;
};

struct DeviceSampleResult {
  int32_t token;
  int32_t status;            // 0: sampled; 1: the host must sample this row
  float logprob;
};

// Floats of scratch sample_rows needs.
inline int64_t sample_scratch_floats(int num_jobs, int vocab) {
  return static_cast<int64_t>(num_jobs) * (2 * static_cast<int64_t>(vocab) + (vocab + 63) / 64);
}

// logits: [rows, vocab] float32; jobs: [n]; penalties: [sum of num_penalties];
// results: [n]; top_ids, top_logprobs: [sum of num_top]; scratch: sample_scratch_floats(n, vocab).
void sample_rows(const float* logits, int vocab, const DeviceSampleJob* jobs, int n, const DevicePenalty* penalties,
                 float* scratch, DeviceSampleResult* results, int32_t* top_ids, float* top_logprobs,
                 cudaStream_t stream);

}  // namespace gyre
