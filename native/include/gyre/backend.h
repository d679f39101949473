// The seam between the engine and the hardware: a backend owns the weights in its own memory,
// the paged KV cache, and runs one forward pass over a Batch. `cpu` is always built; `cuda`
// when nvcc is found.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "gyre/batch.h"
#include "gyre/gpu_memory.h"
#include "gyre/sampling.h"
#include "gyre/weights.h"

namespace gyre {

struct KvCacheSpec {
  int block_size = 16;   // tokens per block
  int num_blocks = 0;    // 0: size from max_tokens / max_bytes
  int64_t max_tokens = 0;
  int64_t max_bytes = 0;
  GpuMemoryOptions gpu_memory;  // GPU: the budget the pool is sized in (serve: GYRE_GPU_MEMORY_*)
  StepPlan step;                // GPU: the step reserved before the pool (the engine fills it from its options)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual const ModelConfig& config() const = 0;
  // Allocates the KV pool; returns the number of blocks it holds.
  virtual int allocate_kv_cache(const KvCacheSpec& spec) = 0;
  virtual int block_size() const = 0;
  virtual int num_blocks() const = 0;
  virtual int64_t kv_bytes_per_block() const = 0;
  // Runs the model over the batch: writes K/V of every token into the cache, then
  // logits [batch.logits_indices.size(), vocab] (float32, row-major) into `logits`.
  // logits may be null where samples_on_device(): the rows then stay on the backend for sample().
  virtual void forward(const Batch& batch, float* logits) = 0;

  // Sampling where the logits are (the GPU: only ids and requested logprobs come back). When
  // true, sample() gives for each request what the engine's Sampler gives on the same row of
  // the last forward()'s logits; when false the engine samples on the host.
  virtual bool samples_on_device() const { return false; }
  virtual void sample(const std::vector<SampleRequest>& requests, std::vector<SampledToken>& out);
};

// kind: "cpu" | "cuda" | "auto". num_threads 0: all cores.
std::unique_ptr<Backend> make_backend(const std::string& kind, std::shared_ptr<ModelWeights> weights,
                                      int num_threads = 0);

}  // namespace gyre
