// The CUDA backend: the Llama/Mistral forward pass on one GPU, activations and weights in the
// weights' storage dtype (f16 or bf16; f32 weights become f16 at upload), float32 accumulation
// everywhere and a float32 residual stream. One stream; forward() returns once the logits are
// on the host. INT8 linear weights (and LM head) stay int8 on the device, with a float32 scale
// per output row, and go through gemm_int8.
//
// Device memory, in the order it is taken:
//   weights    one allocation: per layer qkv [(nh + 2 nkv) d, H], o [H, nh d], gate_up [2I, H],
//              down [H, I] (int8: 1 byte per element, plus float32 scales [rows] stacked alike);
//              embed [V, H]; lm_head [V, H] (shared when tied); norms as float32. Tensors
//              without data get their values from the model's TensorFiller.
//   step       activations for spec.step's tokens, logits rows for its sequences (prompt logits run
//              in chunks of these), decode workspace for its sequences at the longest visible
//              context (grown only if a batch exceeds the plan)
//   KV pool    K and V: [layers][num_blocks, block_size, nkv, d], what the budget leaves (gyre/gpu_memory.h):
//              budget = min(spec.gpu_memory.fraction (0.9) x total, spec.gpu_memory.budget)
//
// Pure decode steps replay a CUDA graph per padded batch size (decode_graphs.h) when the padded
// size fits the step plan's sequences; GYRE_CUDA_GRAPHS=0 or set_cuda_graphs(false) runs every
// step eagerly. Sampling runs on the GPU (device_sampler.h): forward() may leave the logits on the
// device; GYRE_GPU_SAMPLING=0 samples on the host instead.
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "common/rope_table.h"
#include "cuda/cuda_util.h"
#include "cuda/decode_graphs.h"
#include "cuda/device_sampler.h"
#include "gyre/backend.h"

namespace gyre {

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(std::shared_ptr<ModelWeights> weights);
  ~CudaBackend() override;
  const char* name() const override { return "cuda"; }
  const ModelConfig& config() const override { return w_->config; }
  // spec.num_blocks, else max_tokens, else max_bytes, else whatever the budget leaves.
  // Throws if the request does not fit the budget.
  int allocate_kv_cache(const KvCacheSpec& spec) override;
  int block_size() const override { return block_size_; }
  int num_blocks() const override { return num_blocks_; }
  int64_t kv_bytes_per_block() const override;
  void forward(const Batch& batch, float* logits) override;
  bool samples_on_device() const override { return device_sampling_; }
  void sample(const std::vector<SampleRequest>& requests, std::vector<SampledToken>& out) override;

  DType activation_dtype() const { return dt_; }
  void set_cuda_graphs(bool on) { graphs_enabled_ = on; }
  void set_device_sampling(bool on) { device_sampling_ = on; }
  int64_t num_host_sampled_rows() const { return sampler_.num_host_rows(); }
  int64_t num_graph_captures() const { return graphs_.num_captures(); }
  int64_t num_graph_replays() const { return graphs_.num_replays(); }
  // Bytes of the step buffers (activations, logits rows, decode workspace) held now.
  int64_t step_buffer_bytes() const;
  int64_t weight_bytes() const { return static_cast<int64_t>(weights_.bytes()); }

 private:
  struct Layer {
    void* qkv; void* o; void* gate_up; void* down;  // in dt_, or int8
    float* input_norm; float* post_norm;            // [H]
    // int8 weights: float32 [rows of qkv / o / gate_up / down]; null for dt_ weights
    float* qkv_scale; float* o_scale; float* gate_up_scale; float* down_scale;
  };
  void upload_weights();                 // cuda_weights.cc
  void reserve_step(const StepPlan& plan);  // the buffers of the largest step, before the KV pool
  void ensure_activations(int T);
  // Copies the batch's metadata into `dst` in one transfer, padded to `rows` decode rows (pure
  // decode batches only) and block tables `width` wide; points dev_ at it.
  void upload_batch(const Batch& b, int rows, int width, DeviceBuffer& dst);
  // Every layer of one forward pass over dev_ (T tokens), on stream_; then the logits of rows
  // [r0, r0 + rows) of dev_.logits_rows into logits_.
  void enqueue_layers(int T, int width);
  void enqueue_logits(int r0, int rows);
  bool forward_graph(const Batch& b, float* logits);  // false: not a graph step
  std::vector<const void*> graph_buffers() const;

  std::shared_ptr<ModelWeights> w_;
  DType dt_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer weights_;
  std::vector<Layer> layers_;
  void* embed_ = nullptr;
  void* lm_head_ = nullptr;
  float* lm_head_scale_ = nullptr;  // [V] when the LM head is int8
  float* final_norm_ = nullptr;
  RopeTable rope_;

  int block_size_ = 16, num_blocks_ = 0;
  DeviceBuffer k_cache_, v_cache_;

  // Activations: h, tmp, qkv, gate_up float32; x, q, attn, act, sel in dt_.
  int act_tokens_ = 0, act_rows_ = 0;
  int plan_visible_keys_ = 0;  // the most keys a decode token sees in the step plan (graphs' splits cover them)
  DeviceBuffer h_, tmp_, qkv_, gate_up_, x_, q_, attn_, act_, sel_, logits_, workspace_;

  // Batch metadata: host (pinned) and device copies of one packed buffer.
  DeviceBuffer meta_;
  void* meta_host_ = nullptr;
  size_t meta_host_bytes_ = 0;
  struct Meta {
    int32_t *ids, *positions, *seq_of, *block_tables, *logits_rows, *decode_tokens;
    int64_t* slots;
    void* tiles;
    float *cos, *sin;
  } dev_{};
  int num_decode_ = 0, num_tiles_ = 0, num_splits_ = 1;
  // Prefill: the tensor-core flash kernel where it serves the shape (head dim 64/128), else
  // 16-token tiles of prefill_attention. Decode splits fill the SMs (sm_count_).
  bool flash_prefill_ = false;
  int prefill_tile_tokens_ = 16, sm_count_ = 1;

  bool graphs_enabled_ = true;
  int graph_width_ = 0;  // block-table width of the graphs: grows in powers of two
  DecodeGraphs graphs_;
  bool device_sampling_ = true;
  DeviceSampler sampler_;
};

}  // namespace gyre
