// The CPU backend: the Llama/Mistral forward pass over a mixed batch, in float32 whatever the
// storage dtype, threaded over output rows (never inside a sum), so a sequence's logits are
// bit-identical alone or in any batch, chunking or thread count.
#pragma once
#include <memory>
#include <vector>

#include "common/rope_table.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"
#include "gyre/backend.h"

namespace gyre {

class CpuBackend : public Backend {
 public:
  CpuBackend(std::shared_ptr<ModelWeights> weights, int num_threads);
  const char* name() const override { return "cpu"; }
  const ModelConfig& config() const override { return w_->config; }
  int allocate_kv_cache(const KvCacheSpec& spec) override;
  int block_size() const override { return block_size_; }
  int num_blocks() const override { return num_blocks_; }
  int64_t kv_bytes_per_block() const override;
  void forward(const Batch& batch, float* logits) override;

 private:
  // y = x . W^T, in parallel over output panels.
  void linear(const float* x, int T, int ldx, const PackedLinear& w, float* y, int ldy);
  void attention(const Batch& b, int layer, const float* q, int ldq, float* out);

  struct Layer {
    PackedLinear qkv;      // [q; k; v] stacked: [(nh + 2 * nkv) * d, H]
    PackedLinear o;        // [H, nh * d]
    PackedLinear gate_up;  // [gate; up]: [2 * I, H]
    PackedLinear down;     // [H, I]
  };

  std::shared_ptr<ModelWeights> w_;
  ThreadPool pool_;
  std::vector<std::vector<float>> input_norm_, post_norm_;  // [layers][H] as float32
  std::vector<float> final_norm_;                          // [H]
  std::vector<Layer> layers_;
  PackedLinear lm_head_;
  RopeTable rope_;

  int block_size_ = 16;
  int num_blocks_ = 0;
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;  // [layers] x [blocks, bs, kv_heads, d]

  // Activations, grown as needed: [T, ...]
  std::vector<float> h_, x_, qkv_, attn_, gate_up_, tmp_, sel_, row_;
  // Attention's work items (one sequence, one KV head, a run of its tokens), their cost prefix
  // sums and each thread's share, rebuilt every layer.
  struct AttentionItem { int seq, kv_head, t_begin, t_end; };
  std::vector<AttentionItem> attn_items_;
  std::vector<int64_t> attn_cost_;
  std::vector<size_t> attn_bounds_;
};

}  // namespace gyre
