// config.json -> ModelConfig. Only what the Llama/Mistral forward pass needs; anything it
// cannot honour is refused with the file and field named.
#include "gyre/config.h"

#include <sys/stat.h>

#include "gyre/error.h"
#include "model/json.h"
#include "model/model_file.h"

namespace gyre {
namespace {

struct Reader {
  const Json& root;
  const std::string& file;

  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    throw Error(file + ": field '" + field + "' " + msg);
  }
  int get_int(const std::string& key, int fallback, bool required, int min_value = 1, int max_value = 1 << 30) const {
    const Json* v = root.find(key);
    if (!v || v->is_null()) {
      if (required) fail(key, "is missing");
      return fallback;
    }
    if (!v->is_integer()) fail(key, "must be an integer, got '" + (v->kind == Json::kString ? v->text : v->text) + "'");
    int64_t x = v->as_int64();
    if (x < min_value || x > max_value || v->text.size() > 12)
      fail(key, "is out of range: " + v->text.substr(0, 24) + " (" + std::to_string(min_value) + " to " +
                    std::to_string(max_value) + ")");
    return static_cast<int>(x);
  }
  double get_double(const std::string& key, double fallback) const {
    const Json* v = root.find(key);
    if (!v || v->is_null()) return fallback;
    if (v->kind != Json::kNumber) fail(key, "must be a number");
    return v->number;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    const Json* v = root.find(key);
    if (!v || v->is_null()) return fallback;
    if (v->kind != Json::kBool) fail(key, "must be true or false");
    return v->boolean;
  }
};

}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& file) {
  Json root = parse_json(text.data(), text.size(), file);
  if (root.kind != Json::kObject) throw Error(file + ": expected a JSON object");
  Reader r{root, file};
  ModelConfig c;

  const Json* archs = root.find("architectures");
  if (archs && archs->kind == Json::kArray && !archs->array.empty() && archs->array[0].kind == Json::kString) {
    c.architecture = archs->array[0].text;
  } else if (const Json* mt = root.find("model_type"); mt && mt->kind == Json::kString) {
    if (mt->text == "llama") c.architecture = "LlamaForCausalLM";
    else if (mt->text == "mistral") c.architecture = "MistralForCausalLM";
    else r.fail("model_type", "'" + mt->text + "' is not supported (supported: llama, mistral)");
  } else {
    r.fail("architectures", "is missing");
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM")
    r.fail("architectures", "'" + c.architecture + "' is not supported (supported: LlamaForCausalLM, MistralForCausalLM)");
  const bool mistral = c.architecture == "MistralForCausalLM";

  // Bounds well above any Llama/Mistral shape, so that sizes derived from them (tensor shapes,
  // the tensor list, KV bytes) are small enough to compute and loop over safely.
  c.hidden_size = r.get_int("hidden_size", 0, true, 1, kMaxHiddenSize);
  c.intermediate_size = r.get_int("intermediate_size", 0, true, 1, kMaxIntermediateSize);
  c.num_layers = r.get_int("num_hidden_layers", 0, true, 1, kMaxLayers);
  c.num_heads = r.get_int("num_attention_heads", 0, true, 1, kMaxHeads);
  c.num_kv_heads = r.get_int("num_key_value_heads", c.num_heads, false, 1, kMaxHeads);
  c.vocab_size = r.get_int("vocab_size", 0, true, 1, kMaxVocabSize);
  c.max_position_embeddings = r.get_int("max_position_embeddings", mistral ? 32768 : 2048, false, 1, kMaxPositions);
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", std::to_string(c.num_kv_heads) + " does not divide num_attention_heads " +
                                      std::to_string(c.num_heads));
  if (root.find("head_dim") && !root.find("head_dim")->is_null()) {
    c.head_dim = r.get_int("head_dim", 0, true, 1, kMaxHeadDim);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      r.fail("num_attention_heads", std::to_string(c.num_heads) + " does not divide hidden_size " +
                                        std::to_string(c.hidden_size));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings, got " + std::to_string(c.head_dim));

  double eps = r.get_double("rms_norm_eps", 1e-6);
  if (!(eps > 0 && eps < 1)) r.fail("rms_norm_eps", "must be in (0, 1)");
  c.rms_norm_eps = static_cast<float>(eps);
  c.rope_theta = r.get_double("rope_theta", 10000.0);
  if (!(c.rope_theta > 1)) r.fail("rope_theta", "must be > 1");

  if (const Json* rs = root.find("rope_scaling"); rs && !rs->is_null()) {
    if (rs->kind != Json::kObject) r.fail("rope_scaling", "must be an object or null");
    const Json* type = rs->find("rope_type");
    if (!type) type = rs->find("type");
    if (!type || type->kind != Json::kString) r.fail("rope_scaling.type", "is missing");
    if (type->text == "linear") c.rope_scaling = RopeScaling::kLinear;
    else if (type->text == "dynamic") c.rope_scaling = RopeScaling::kDynamic;
    else if (type->text == "default") c.rope_scaling = RopeScaling::kNone;
    else r.fail("rope_scaling.type", "'" + type->text + "' is not supported (supported: linear, dynamic)");
    if (c.rope_scaling != RopeScaling::kNone) {
      const Json* f = rs->find("factor");
      if (!f || f->kind != Json::kNumber || !(f->number >= 1.0))
        r.fail("rope_scaling.factor", "must be a number >= 1");
      c.rope_scaling_factor = f->number;
    }
  }

  if (const Json* sw = root.find("sliding_window"); sw && !sw->is_null()) {
    bool use = r.get_bool("use_sliding_window", true);
    if (use) c.sliding_window = r.get_int("sliding_window", 0, true, 1, kMaxPositions);
  }
  c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
  if (r.get_bool("attention_bias", false)) r.fail("attention_bias", "true is not supported (Llama/Mistral have no biases)");
  if (r.get_bool("mlp_bias", false)) r.fail("mlp_bias", "true is not supported");
  if (const Json* act = root.find("hidden_act"); act && act->kind == Json::kString && act->text != "silu")
    r.fail("hidden_act", "'" + act->text + "' is not supported (supported: silu)");

  if (const Json* q = root.find("quantization_config"); q && !q->is_null()) {
    const Json* m = q->kind == Json::kObject ? q->find("quant_method") : nullptr;
    if (!m || m->kind != Json::kString) r.fail("quantization_config.quant_method", "is missing");
    else if (m->text == "gyre_int8") c.gyre_int8 = true;
    else r.fail("quantization_config.quant_method", "'" + m->text +
                "' is not supported (Gyre reads float weights, or its own int8 from `gyre quantize`: gyre_int8)");
  }
  c.bos_token_id = r.get_int("bos_token_id", 1, false, 0, c.vocab_size - 1);
  // An id is read as int64 and range-checked before it is narrowed.
  auto eos_id = [&](const Json& e) {
    if (!e.is_integer() || e.text.size() > 12 || e.as_int64() < 0 || e.as_int64() >= c.vocab_size)
      r.fail("eos_token_id", e.text.substr(0, 24) + " is outside the vocabulary");
    return static_cast<int>(e.as_int64());
  };
  if (const Json* eos = root.find("eos_token_id"); eos && !eos->is_null()) {
    if (eos->kind == Json::kArray) {
      if (eos->array.size() > 64) r.fail("eos_token_id", "lists " + std::to_string(eos->array.size()) + " ids (at most 64)");
      for (const Json& e : eos->array) {
        if (!e.is_integer()) r.fail("eos_token_id", "must hold integers");
        c.eos_token_ids.push_back(eos_id(e));
      }
    } else if (eos->is_integer()) {
      c.eos_token_ids.push_back(eos_id(*eos));
    } else {
      r.fail("eos_token_id", "must be an integer or a list of integers");
    }
  } else {
    c.eos_token_ids.push_back(2);
  }
  for (int e : c.eos_token_ids)
    if (e < 0 || e >= c.vocab_size) r.fail("eos_token_id", std::to_string(e) + " is outside the vocabulary");
  return c;
}

ModelConfig load_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw Error(path + ": cannot open (is '" + dir + "' a model folder?)");
  return parse_config(read_model_file(dir, "config.json"), path);
}

}  // namespace gyre
