// Model folder -> ModelWeights: config.json, then model.safetensors or the shards that
// model.safetensors.index.json names (other .safetensors files are never opened). Every tensor
// the forward pass uses is checked for presence, float dtype and exact shape.
#include "gyre/weights.h"

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "gyre/error.h"
#include "model/json.h"

namespace gyre {
namespace {

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

class TensorSource {
 public:
  explicit TensorSource(const std::string& dir) {
    std::string index = dir + "/model.safetensors.index.json";
    std::string single = dir + "/model.safetensors";
    if (file_exists(index)) {
      index_path_ = index;
      std::ifstream in(index, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      Json root = parse_json(text.data(), text.size(), index);
      const Json* map = root.find("weight_map");
      if (!map || map->kind != Json::kObject) throw Error(index + ": field 'weight_map' is missing");
      std::map<std::string, size_t> opened;
      for (const auto& [name, file] : map->object) {
        if (file.kind != Json::kString || file.text.empty() || file.text.find('/') != std::string::npos)
          throw Error(index + ": weight_map['" + name + "'] must be a file name in the model folder");
        auto it = opened.find(file.text);
        if (it == opened.end()) {
          std::string path = dir + "/" + file.text;
          if (!file_exists(path)) throw Error(index + ": shard '" + file.text + "' (for tensor '" + name + "') is missing");
          files_.push_back(std::make_unique<SafetensorsFile>(path));
          it = opened.emplace(file.text, files_.size() - 1).first;
        }
        where_[name] = it->second;
      }
    } else if (file_exists(single)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single));
      for (const auto& n : files_[0]->names()) where_[n] = 0;
    } else {
      throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
    }
  }

  bool has(const std::string& name) const { return where_.count(name) != 0; }

  // A float tensor of exactly this shape, or an error naming file, tensor and field.
  TensorView get(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = where_.find(name);
    if (it == where_.end())
      throw Error((index_path_.empty() ? files_[0]->path() : index_path_) + ": tensor '" + name + "' is missing");
    const SafetensorsFile& f = *files_[it->second];
    if (!f.has(name) && index_path_.size())
      throw Error(index_path_ + ": maps tensor '" + name + "' to " + f.path() + ", which does not hold it");
    const TensorView& t = f.get(name);
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16)
      throw Error(f.path() + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) + "; expected F32, F16 or BF16");
    if (t.shape != shape)
      throw Error(f.path() + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " +
                  shape_str(shape) + " from config.json");
    return t;
  }

  std::vector<std::unique_ptr<SafetensorsFile>> release() { return std::move(files_); }

 private:
  std::string index_path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;
};

}  // namespace

std::unique_ptr<ModelWeights> load_model(const std::string& dir) {
  auto m = std::make_unique<ModelWeights>();
  m->config = load_config(dir);
  const ModelConfig& c = m->config;
  TensorSource src(dir);
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_out = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_out = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;

  m->embed = src.get("model.embed_tokens.weight", {V, H});
  m->final_norm = src.get("model.norm.weight", {H});
  if (c.tie_word_embeddings) {
    m->lm_head = m->embed;
  } else {
    if (!src.has("lm_head.weight"))
      throw Error(dir + ": tensor 'lm_head.weight' is missing and config.json has tie_word_embeddings false");
    m->lm_head = src.get("lm_head.weight", {V, H});
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.input_norm = src.get(p + "input_layernorm.weight", {H});
    w.wq = src.get(p + "self_attn.q_proj.weight", {q_out, H});
    w.wk = src.get(p + "self_attn.k_proj.weight", {kv_out, H});
    w.wv = src.get(p + "self_attn.v_proj.weight", {kv_out, H});
    w.wo = src.get(p + "self_attn.o_proj.weight", {H, q_out});
    w.post_norm = src.get(p + "post_attention_layernorm.weight", {H});
    w.w_gate = src.get(p + "mlp.gate_proj.weight", {I, H});
    w.w_up = src.get(p + "mlp.up_proj.weight", {I, H});
    w.w_down = src.get(p + "mlp.down_proj.weight", {H, I});
    m->layers.push_back(w);
  }
  m->dtype = c.num_layers > 0 ? m->layers[0].wq.dtype : m->embed.dtype;
  m->files = src.release();
  return m;
}

}  // namespace gyre
