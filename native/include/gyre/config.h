// Model configuration, read from a Hugging Face config.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gyre {

enum class RopeScaling { kNone, kLinear, kDynamic };

// The largest values config.json may give (a model folder is untrusted input).
constexpr int kMaxHiddenSize = 65536;
constexpr int kMaxIntermediateSize = 262144;
constexpr int kMaxLayers = 1024;
constexpr int kMaxHeads = 1024;
constexpr int kMaxHeadDim = 1024;
constexpr int kMaxVocabSize = 1 << 20;
constexpr int kMaxPositions = 1 << 22;

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" | "MistralForCausalLM"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // == num_heads: MHA; 1: MQA; else GQA
  int head_dim = 0;      // hidden_size / num_heads unless config.json says otherwise
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_scaling_factor = 1.0;
  int sliding_window = 0;  // 0: none; else each query sees this many keys, itself included
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  std::vector<int> eos_token_ids;  // config.json may give one id or a list
  // quantization_config.quant_method == "gyre_int8" (written by `gyre quantize`); other methods are refused.
  bool gyre_int8 = false;
};

// Parses and validates <dir>/config.json. Throws gyre::Error naming the file and field.
ModelConfig load_config(const std::string& dir);
ModelConfig parse_config(const std::string& json_text, const std::string& file_name);

}  // namespace gyre
