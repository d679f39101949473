// GPU memory sizing in one place: the A10G's numbers, the budget, and what the CUDA backend
// reserves for one step before it sizes the KV pool. Pure functions (no CUDA): the backend
// reads the device and calls them; the bench and the tests call them with A10G numbers.
//
//   budget = fraction (default 0.9) x total, capped by an absolute budget in bytes
//   step   = activations for max_num_batched_tokens tokens
//          + logits rows for max_num_seqs sequences (prompt-logits steps run in chunks of these)
//          + decode split-K workspace for max_num_seqs tokens, splits for min(max_model_len, window) keys
//   kv     = budget - (weights + step + CUDA context: what the device already holds) - margin
//
// plan_gpu_memory() runs the same arithmetic before there is a device (validate, the CDK stack's
// fit check, the bench): weights as the CUDA backend uploads them, the engine's default step, and
// kCudaContextBytes for what the device holds before the model.
#pragma once
#include <cstdint>
#include <string>

#include "gyre/config.h"

namespace gyre {

// What an A10G reports as its total memory (cudaMemGetInfo): 23,028 MiB, about 22.5 GiB.
constexpr int64_t kA10gTotalBytes = 23028LL << 20;
constexpr double kDefaultGpuMemoryFraction = 0.9;
// The production budget on an A10G, 0.9 x its total: about 20.2 GiB.
constexpr int64_t kA10gBudgetBytes = static_cast<int64_t>(kA10gTotalBytes * kDefaultGpuMemoryFraction);
// Left free inside the budget for what is allocated later (cuBLASLt workspace, pinned staging).
constexpr int64_t kGpuMarginBytes = 256LL << 20;
// What the device holds before the model: CUDA context, cuBLASLt workspace, sampler buffers.
// An estimate (the backend reads the real figure from cudaMemGetInfo).
constexpr int64_t kCudaContextBytes = 512LL << 20;
// Decode split-K: keys per split.
constexpr int kDecodeSplitTokens = 512;

struct GpuMemoryOptions {
  double fraction = 0;  // share of the device's total memory, in (0, 1]; 0: kDefaultGpuMemoryFraction
  int64_t budget = 0;   // absolute cap in bytes; 0: none
};

struct MemoryBudget {
  int64_t total = 0, free = 0, budget = 0, margin = 0, kv_bytes = 0;
  double fraction = kDefaultGpuMemoryFraction;
  std::string describe() const;
  // KV blocks of `bytes_per_block` in kv_bytes (0 if none): the CUDA backend's pool size.
  int64_t kv_blocks(int64_t bytes_per_block) const;
};

// Throws gyre::Error naming the setting (GYRE_GPU_MEMORY_FRACTION / _BUDGET) when out of range.
MemoryBudget memory_budget(int64_t total, int64_t free, const GpuMemoryOptions& options);
// "25769803776", "24G", "24GiB", "512M" (K, M, G, T: powers of 1024). -1 if malformed.
int64_t parse_bytes(const std::string& s);

// The largest step the backend must run without allocating.
struct StepPlan {
  int max_num_seqs = 256;             // decode tokens and logits rows per step
  int max_num_batched_tokens = 2048;  // tokens per step
  int max_model_len = 0;              // 0: the model's max_position_embeddings (else 2048)
};

// Decode splits that cover `visible_keys` keys.
inline int decode_num_splits(int visible_keys, int split_len = kDecodeSplitTokens) {
  return visible_keys <= 0 ? 1 : (visible_keys + split_len - 1) / split_len;
}
// The most keys a decode token can see: min(max_model_len, sliding window).
int max_visible_keys(const ModelConfig& c, int max_model_len);

// Bytes the CUDA backend holds for one step, each part for `plan` (elem: bytes of the activation dtype).
struct StepBuffers {
  int64_t activations = 0;  // per token: h, tmp, qkv, gate_up (float32); x, q, attn, act (elem)
  int64_t logits = 0;       // per row: the selected hidden row (elem) and its float32 logits
  int64_t workspace = 0;    // decode split-K partials
  int64_t total() const { return activations + logits + workspace; }
};
StepBuffers step_buffers(const ModelConfig& c, int elem, const StepPlan& plan);
int64_t activation_bytes_per_token(const ModelConfig& c, int elem);
int64_t logits_bytes_per_row(const ModelConfig& c, int elem);
int64_t decode_workspace_bytes(const ModelConfig& c, int tokens, int splits);

// K and V of one token in every layer (elem: bytes of the KV dtype).
int64_t kv_bytes_per_token(const ModelConfig& c, int elem = 2);

// Weight bytes on the GPU as the CUDA backend uploads them (cuda_weights.cc): linear weights and
// the embedding in the activation dtype (elem bytes), or int8 linear weights with a float32 scale
// per output row; norms float32; the LM head shares the embedding when tied, else its own
// (int8 with int8_lm_head); every tensor group 256-byte aligned.
int64_t gpu_weight_bytes(const ModelConfig& c, bool int8, bool int8_lm_head = false, int elem = 2);

struct GpuPlanOptions {
  int64_t total = kA10gTotalBytes;       // what the card reports
  GpuMemoryOptions memory;               // fraction, absolute budget
  StepPlan step;                         // the engine's defaults
  int64_t context = kCudaContextBytes;   // held before the model
  int block_size = 16;
  bool int8 = false, int8_lm_head = false;
};
struct GpuPlan {
  int64_t weights = 0, context = 0, budget = 0, margin = 0;
  StepBuffers step;
  int64_t kv_bytes = 0;           // what the budget leaves for the pool; negative: the rest does not fit
  int64_t kv_bytes_per_token = 0;
  int64_t kv_blocks = 0, kv_tokens = 0;  // the pool the backend would allocate
};
// The KV pool a model gets on a card, as the CUDA backend sizes it. Throws on bad options.
GpuPlan plan_gpu_memory(const ModelConfig& c, const GpuPlanOptions& o = GpuPlanOptions{});

// The KV pool on a device of `total` bytes that already holds `used` bytes (weights, step
// buffers, CUDA context): blocks of `bytes_per_block` that fit the budget (0 if none).
int64_t kv_blocks_that_fit(int64_t total, int64_t used, int64_t bytes_per_block, const GpuMemoryOptions& options);

}  // namespace gyre
