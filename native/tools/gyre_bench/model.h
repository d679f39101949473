// The benchmark's model: a "virtual" ModelWeights of a shape of the native table (data-less
// tensors the CUDA upload fills with random values), and what it must move and compute.
#pragma once
#include <cstdint>
#include <memory>

#include "common.h"
#include "gyre/weights.h"
#include "options.h"

namespace gyre_bench {

struct Counts {
  int64_t linear_bytes = 0;     // every layer's linear weights (+ int8 scales)
  int64_t linear_params = 0;    // their element count
  int64_t norm_bytes = 0;       // norms as the backend holds them (float32)
  int64_t lm_head_bytes = 0;
  int64_t embed_row_bytes = 0;  // one token's embedding row
  int64_t kv_bytes_per_token = 0;  // K and V, every layer, f16
};

struct Model {
  ModelConfig cfg;
  std::shared_ptr<ModelWeights> weights;
  Counts counts;
};

// The shape of --shape with --layers and --quantization applied.
Model make_model(const Options& o);
Counts count(const ModelWeights& w);
// Linear-layer FLOPs of T tokens through every layer (2 per multiply-add), and the causal
// attention FLOPs (QK^T and PV) of a chunk of T tokens from position 0.
double linear_flops(const ModelConfig& c, int64_t T);
double attention_flops(const ModelConfig& c, int64_t T);
// The report's "model" object.
Json model_json(const Options& o, const Model& m);

}  // namespace gyre_bench
