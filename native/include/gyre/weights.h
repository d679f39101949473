// The weights of a Llama/Mistral model, as views into mmap'd safetensors files (or, for
// weights quantized at load, into buffers the ModelWeights owns).
// Linear weights keep the Hugging Face layout: [out_features, in_features], row-major.
//
// 8-bit weights (weight-only INT8, symmetric, one scale per output channel): a linear weight of
// dtype I8 comes with a float32 scale per output row, and stands for W[o, k] = q[o, k] * scale[o].
// On disk (`gyre quantize`): `<name>.weight` I8 [out, in] plus `<name>.weight_scale` F32 [out],
// and config.json gets "quantization_config": {"quant_method": "gyre_int8", ...}.
// Embeddings and norms stay in their float dtype; the LM head is quantized only when asked.
#pragma once
#include <cstdint>
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
  // With I8 weights: F32 [out_features] each; empty (data == nullptr) otherwise.
  TensorView wq_scale, wk_scale, wv_scale, wo_scale, w_gate_scale, w_up_scale, w_down_scale;
};

enum class Quantization { kNone, kInt8 };
const char* quantization_name(Quantization q);  // "none" | "int8"

struct LoadOptions {
  // kInt8: float linear weights are quantized at load (weights already in I8 are used as they are).
  Quantization quantization = Quantization::kNone;
  bool quantize_lm_head = false;  // with kInt8: the LM head too (default: it keeps its dtype)
};

// What a weight tensor is, for a TensorFiller: a matrix (linear weight, embedding, LM head), a
// norm weight, or the float32 row scales of an I8 matrix.
enum class WeightRole { kMatrix, kNorm, kScale };

// Makes the values of tensors without data (data == nullptr) in device memory as a backend
// uploads them, so benchmarks and tests can run 13B-shaped models without host weights
// (native/synthetic/). A backend refuses such tensors when the model has no filler.
class TensorFiller {
 public:
  virtual ~TensorFiller() = default;
  // dst: device memory for n elements of `to`; seed: the tensor's index in upload order;
  // stream: the uploading backend's stream (a cudaStream_t on CUDA).
  virtual void fill(void* dst, DType to, int64_t n, WeightRole role, uint64_t seed, void* stream) const = 0;
};

struct ModelWeights {
  ModelConfig config;
  // The float dtype of the model: of the linear weights, or (when they are I8) of the embedding.
  // Activations on the GPU use it.
  DType dtype = DType::kF32;
  Quantization quantization = Quantization::kNone;  // kInt8: every layer's linear weights are I8
  TensorView embed;           // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView final_norm;      // [hidden]
  TensorView lm_head;         // [vocab, hidden]; the embedding when tied (and not quantized)
  TensorView lm_head_scale;   // F32 [vocab] when lm_head is I8
  std::vector<std::unique_ptr<SafetensorsFile>> files;  // keep the mappings alive
  std::vector<std::vector<char>> owned;                 // buffers of weights quantized at load
  std::shared_ptr<const TensorFiller> filler;           // for tensors without data; null: all have data

  int64_t linear_weight_bytes() const;  // bytes of every layer's linear weights (+ scales)
};

// Loads <dir>/config.json and <dir>/model.safetensors, or the shards that
// <dir>/model.safetensors.index.json names. Other .safetensors files in <dir> are not read.
// Throws gyre::Error naming the file and field/tensor for anything missing or inconsistent.
std::unique_ptr<ModelWeights> load_model(const std::string& dir, const LoadOptions& options = {});

// Quantizes every layer's float linear weights (and the LM head when asked) into buffers `m`
// owns; weights already I8 are kept. load_model() calls it for LoadOptions::kInt8.
void quantize_weights(ModelWeights& m, bool quantize_lm_head);

// Symmetric per-row absmax INT8: scale[r] = max_k |w[r, k]| / 127 (float32), q = round-half-even
// (w / scale) clamped to [-127, 127]; an all-zero row gets scale 0 and q 0. `w` is [rows, cols]
// of F32, F16 or BF16. The one quantizer: load-time quantization and `gyre quantize` both use it,
// so their results are bit-identical.
void quantize_int8_rows(const TensorView& w, int8_t* q, float* scale);

}  // namespace gyre
