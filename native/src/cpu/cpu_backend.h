// The CPU backend: the Llama/Mistral forward pass over a mixed batch, in float32 whatever the
// storage dtype, threaded over output rows (never inside a sum), so a sequence's logits are
// bit-identical alone or in any batch, chunking or thread count.
#pragma once
#include <memory>
#include <vector>

#include "gyre/backend.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

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
  // y[:, o] = x . W[o]^T for the rows of W, in parallel over o.
  void linear(const float* x, int T, int K, const TensorView& w, float* y, int ldy);
  void attention(const Batch& b, int layer, const float* q, float* out);

  std::shared_ptr<ModelWeights> w_;
  ThreadPool pool_;
  std::vector<std::vector<float>> input_norm_, post_norm_;  // [layers][H] as float32
  std::vector<float> final_norm_;                          // [H]
  RopeTable rope_;

  int block_size_ = 16;
  int num_blocks_ = 0;
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;  // [layers] x [blocks, bs, kv_heads, d]

  // Activations, grown as needed: [T, ...]
  std::vector<float> h_, x_, q_, k_, v_, attn_, gate_, up_, tmp_, sel_;
};

}  // namespace gyre
