// Virtual models: a ModelWeights of a config's shapes whose tensors have no data. On upload the
// CUDA backend asks the model's filler for the values, which deterministic random values
// generated on the GPU provide (random_fill.cuh), so a benchmark runs a 13B-shaped model without
// 26 GB of host weights. For the tools and tests only: the addon does not link this.
#pragma once
#include <memory>

#include "gyre/config.h"
#include "gyre/weights.h"

namespace gyre {

// A weightless f16 model of config `c`. With `int8`, every layer's linear weights are I8 with
// F32 scales, and the LM head too if `int8_lm_head`. Builds without the CUDA backend give it no
// filler (no backend could upload it).
std::shared_ptr<ModelWeights> virtual_model(const ModelConfig& c, bool int8, bool int8_lm_head = false);

}  // namespace gyre
