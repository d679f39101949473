// The host side of the device sampler (sampling.cuh): turns the engine's sample requests into
// device jobs (penalty lists, the seeded uniform number), runs them in one launch with one copy
// each way, and samples on the host the rows the device leaves (too many candidates).
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/sampling.cuh"
#include "engine/sampler.h"
#include "gyre/sampling.h"

namespace gyre {

class DeviceSampler {
 public:
  explicit DeviceSampler(int vocab_size);
  ~DeviceSampler();
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  // logits: [rows, vocab] float32 on the device; out[i] for requests[i].
  void sample(const float* logits, const std::vector<SampleRequest>& requests, std::vector<SampledToken>& out,
              cudaStream_t stream);
  int64_t num_host_rows() const { return num_host_rows_; }  // rows left to the host so far

 private:
  void* host(size_t bytes);  // pinned staging, grown as needed

  int vocab_size_;
  Sampler host_sampler_;
  DeviceBuffer in_, out_, scratch_;
  void* pinned_ = nullptr;
  size_t pinned_bytes_ = 0;
  std::vector<float> row_;
  int64_t num_host_rows_ = 0;
};

}  // namespace gyre
