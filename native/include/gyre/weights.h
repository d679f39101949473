// The weights of a Llama/Mistral model, as views into mmap'd safetensors files.
// Linear weights keep the Hugging Face layout: [out_features, in_features], row-major.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gyre/config.h"
#include "gyre/safetensors.h"
#include "gyre/tensor.h"

namespace gyre {

struct LayerWeights {
  TensorView input_norm;     // [hidden]
  TensorView wq;             // [num_heads * head_dim, hidden]
  TensorView wk;             // [num_kv_heads * head_dim, hidden]
  TensorView wv;             // [num_kv_heads * head_dim, hidden]
  TensorView wo;             // [hidden, num_heads * head_dim]
  TensorView post_norm;      // [hidden]
  TensorView w_gate;         // [intermediate, hidden]
  TensorView w_up;           // [intermediate, hidden]
  TensorView w_down;         // [hidden, intermediate]
};

struct ModelWeights {
  ModelConfig config;
  DType dtype = DType::kF32;  // storage dtype of the linear weights (one for the whole model)
  TensorView embed;           // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView final_norm;      // [hidden]
  TensorView lm_head;         // [vocab, hidden]; the embedding when tied
  std::vector<std::unique_ptr<SafetensorsFile>> files;  // keep the mappings alive
};

// Loads <dir>/config.json and <dir>/model.safetensors, or the shards that
// <dir>/model.safetensors.index.json names. Other .safetensors files in <dir> are not read.
// Throws gyre::Error naming the file and field/tensor for anything missing or inconsistent.
std::unique_ptr<ModelWeights> load_model(const std::string& dir);

}  // namespace gyre
