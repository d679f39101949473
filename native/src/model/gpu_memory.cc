#include "gyre/gpu_memory.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "gyre/error.h"

namespace gyre {

int64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v >= 0)) return -1;
  std::string unit(end);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mul = 1;
  if (unit == "K") mul = 1024.0;
  else if (unit == "M") mul = 1024.0 * 1024;
  else if (unit == "G") mul = 1024.0 * 1024 * 1024;
  else if (unit == "T") mul = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") return -1;
  return static_cast<int64_t>(std::llround(v * mul));
}

std::string MemoryBudget::describe() const {
  auto gib = [](int64_t b) { return std::to_string(static_cast<double>(b) / (1 << 30)).substr(0, 6) + " GiB"; };
  return "total " + gib(total) + ", free " + gib(free) + ", budget " + gib(budget) + " (fraction " +
         std::to_string(fraction).substr(0, 4) + "), left for KV " + gib(kv_bytes);
}

MemoryBudget memory_budget(int64_t total, int64_t free, const GpuMemoryOptions& o) {
  MemoryBudget m;
  m.total = total;
  m.free = free;
  if (o.fraction != 0) {
    if (!(o.fraction > 0 && o.fraction <= 1))
      throw Error("GYRE_GPU_MEMORY_FRACTION (gpu memory fraction): " + std::to_string(o.fraction) +
                  " must be a number in (0, 1]");
    m.fraction = o.fraction;
  }
  if (o.budget < 0)
    throw Error("GYRE_GPU_MEMORY_BUDGET (gpu memory budget): " + std::to_string(o.budget) + " bytes must not be negative");
  m.budget = static_cast<int64_t>(m.fraction * static_cast<double>(total));
  if (o.budget > 0) m.budget = std::min(m.budget, o.budget);
  m.margin = kGpuMarginBytes;
  m.kv_bytes = m.budget - (total - free) - m.margin;
  return m;
}

int max_visible_keys(const ModelConfig& c, int max_model_len) {
  int len = max_model_len > 0 ? max_model_len : c.max_position_embeddings > 0 ? c.max_position_embeddings : 2048;
  return c.sliding_window > 0 ? std::min(len, c.sliding_window) : len;
}

int64_t activation_bytes_per_token(const ModelConfig& c, int elem) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, QO = int64_t(c.num_heads) * c.head_dim;
  const int64_t QKV = QO + 2 * int64_t(c.num_kv_heads) * c.head_dim;
  return 4 * (2 * H + QKV + 2 * I) + elem * (H + 2 * QO + I);
}

int64_t logits_bytes_per_row(const ModelConfig& c, int elem) {
  return int64_t(elem) * c.hidden_size + 4 * int64_t(c.vocab_size);
}

int64_t decode_workspace_bytes(const ModelConfig& c, int tokens, int splits) {
  return 4 * int64_t(tokens) * c.num_heads * splits * (c.head_dim + 2);
}

StepBuffers step_buffers(const ModelConfig& c, int elem, const StepPlan& plan) {
  StepBuffers b;
  const int tokens = std::max(1, plan.max_num_batched_tokens);
  const int seqs = std::max(1, std::min(plan.max_num_seqs, tokens));  // a step has at most `tokens` sequences
  b.activations = activation_bytes_per_token(c, elem) * tokens;
  b.logits = logits_bytes_per_row(c, elem) * seqs;
  b.workspace = decode_workspace_bytes(c, seqs, decode_num_splits(max_visible_keys(c, plan.max_model_len)));
  return b;
}

int64_t MemoryBudget::kv_blocks(int64_t bytes_per_block) const {
  return bytes_per_block > 0 ? std::max<int64_t>(0, kv_bytes) / bytes_per_block : 0;
}

int64_t kv_blocks_that_fit(int64_t total, int64_t used, int64_t bytes_per_block, const GpuMemoryOptions& options) {
  return memory_budget(total, total - used, options).kv_blocks(bytes_per_block);
}

int64_t kv_bytes_per_token(const ModelConfig& c, int elem) {
  return 2LL * c.num_layers * c.num_kv_heads * c.head_dim * elem;
}

int64_t gpu_weight_bytes(const ModelConfig& c, bool int8, bool int8_lm_head, int elem) {
  auto align = [](int64_t n) { return (n + 255) / 256 * 256; };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t QO = int64_t(c.num_heads) * c.head_dim, KVO = int64_t(c.num_kv_heads) * c.head_dim;
  // A stacked group of matrices with `rows` output rows of `cols` inputs (+ its scales when int8).
  auto linear = [&](int64_t rows, int64_t cols, bool q) {
    return q ? align(rows * cols) + align(rows * 4) : align(rows * cols * elem);
  };
  int64_t layer = linear(QO + 2 * KVO, H, int8) + linear(H, QO, int8) + linear(2 * I, H, int8) + linear(H, I, int8);
  layer += 2 * align(H * 4);  // input and post-attention norms
  int64_t total = c.num_layers * layer + align(V * H * elem) + align(H * 4);  // + embedding, final norm
  const bool lm_int8 = int8 && int8_lm_head;
  if (lm_int8 || !c.tie_word_embeddings) total += linear(V, H, lm_int8);
  return total;
}

GpuPlan plan_gpu_memory(const ModelConfig& c, const GpuPlanOptions& o) {
  GpuPlan p;
  p.weights = gpu_weight_bytes(c, o.int8, o.int8_lm_head);
  p.step = step_buffers(c, 2, o.step);
  p.context = o.context;
  const MemoryBudget m = memory_budget(o.total, o.total - (p.weights + p.step.total() + p.context), o.memory);
  p.budget = m.budget;
  p.margin = m.margin;
  p.kv_bytes = m.kv_bytes;
  p.kv_bytes_per_token = kv_bytes_per_token(c);
  p.kv_blocks = m.kv_blocks(p.kv_bytes_per_token * std::max(1, o.block_size));
  p.kv_tokens = p.kv_blocks * std::max(1, o.block_size);
  return p;
}

}  // namespace gyre
