#include "gyre/shapes.h"

#include "gyre/error.h"
#include "model/json_write.h"

namespace gyre {
namespace {

struct Shape {
  const char* name;
  const char* architecture;
  int hidden, layers, heads, kv_heads, intermediate, max_pos, sliding_window;
  bool tied;
};

// vocab 32000, rms_norm_eps 1e-5, rope_theta 10000, bos 1, eos 2 for all of them.
constexpr Shape kShapes[] = {
    {"tiny", "LlamaForCausalLM", 64, 2, 4, 2, 176, 2048, 0, true},
    {"100m", "LlamaForCausalLM", 768, 12, 12, 12, 2048, 1024, 0, true},  // llama2.c stories110M
    {"llama-2-7b", "LlamaForCausalLM", 4096, 32, 32, 32, 11008, 4096, 0, false},
    {"llama-2-13b", "LlamaForCausalLM", 5120, 40, 40, 40, 13824, 4096, 0, false},
    {"mistral-7b", "MistralForCausalLM", 4096, 32, 32, 8, 14336, 32768, 4096, false},  // v0.1
};

const Shape* find(const std::string& name) {
  for (const Shape& s : kShapes)
    if (name == s.name) return &s;
  return nullptr;
}

}  // namespace

std::vector<std::string> shape_names() {
  std::vector<std::string> names;
  for (const Shape& s : kShapes) names.push_back(s.name);
  return names;
}

bool has_shape(const std::string& name) { return find(name) != nullptr; }

ModelConfig shape_config(const std::string& name) {
  const Shape* s = find(name);
  if (!s) {
    std::string known;
    for (const Shape& k : kShapes) known += std::string(known.empty() ? "" : ", ") + k.name;
    throw Error("unknown shape '" + name + "' (known: " + known + ")");
  }
  ModelConfig c;
  c.architecture = s->architecture;
  c.hidden_size = s->hidden;
  c.num_layers = s->layers;
  c.num_heads = s->heads;
  c.num_kv_heads = s->kv_heads;
  c.head_dim = s->hidden / s->heads;
  c.intermediate_size = s->intermediate;
  c.vocab_size = 32000;
  c.max_position_embeddings = s->max_pos;
  c.sliding_window = s->sliding_window;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = s->tied;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

std::string shapes_json() {
  OrderedJson all = OrderedJson::obj();
  for (const Shape& s : kShapes) {
    const ModelConfig c = shape_config(s.name);
    OrderedJson j = OrderedJson::obj();
    j.set("architecture", c.architecture);
    j.set("hidden_size", c.hidden_size);
    j.set("num_hidden_layers", c.num_layers);
    j.set("num_attention_heads", c.num_heads);
    j.set("num_key_value_heads", c.num_kv_heads);
    j.set("head_dim", c.head_dim);
    j.set("intermediate_size", c.intermediate_size);
    j.set("vocab_size", c.vocab_size);
    j.set("max_position_embeddings", c.max_position_embeddings);
    j.set("sliding_window", c.sliding_window ? OrderedJson::num(c.sliding_window) : OrderedJson());
    j.set("rms_norm_eps", 1e-5);  // c.rms_norm_eps is the float nearest it
    j.set("rope_theta", c.rope_theta);
    j.set_bool("tie_word_embeddings", c.tie_word_embeddings);
    j.set("bos_token_id", c.bos_token_id);
    j.set("eos_token_id", c.eos_token_ids.at(0));
    all.set(s.name, std::move(j));
  }
  return all.dump() + "\n";
}

}  // namespace gyre
