// Model folder -> ModelWeights: config.json, then model.safetensors or the shards that
// model.safetensors.index.json names (other .safetensors files are never opened). Every tensor
// the forward pass uses is checked for presence, float dtype and exact shape.
#include "gyre/weights.h"

#include <sys/stat.h>

#include <map>
#include <set>
#include <thread>
#include <mutex>
#include <algorithm>
#include <exception>

#include "gyre/error.h"
#include "model/json.h"
#include "model/model_file.h"

namespace gyre {
namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// A shard named by the index (or model.safetensors): a plain name, a regular file inside dir.
std::unique_ptr<SafetensorsFile> open_shard(const std::string& dir, const std::string& name) {
  size_t size = 0;
  ::close(open_model_file(dir, name, &size));
  return std::make_unique<SafetensorsFile>(dir + "/" + name);
}

class TensorSource {
 public:
  explicit TensorSource(const std::string& dir) {
    std::string index = dir + "/model.safetensors.index.json";
    std::string single = dir + "/model.safetensors";
    if (exists(index)) {
      index_path_ = index;
      std::string text = read_model_file(dir, "model.safetensors.index.json");
      Json root = parse_json(text.data(), text.size(), index);
      const Json* map = root.find("weight_map");
      if (!map || map->kind != Json::kObject) throw Error(index + ": field 'weight_map' is missing");
      if (map->object.size() > kMaxWeightMapEntries)
        throw Error(index + ": field 'weight_map' has " + std::to_string(map->object.size()) + " entries (at most " +
                    std::to_string(kMaxWeightMapEntries) + ")");
      // Every entry is checked before any file is opened.
      std::map<std::string, size_t> opened;
      for (const auto& [name, file] : map->object) {
        if (file.kind != Json::kString || !is_plain_name(file.text))
          throw Error(index + ": weight_map['" + name + "'] must be a file name in the model folder");
        opened.emplace(file.text, 0);
      }
      if (opened.size() > kMaxShards)
        throw Error(index + ": field 'weight_map' names " + std::to_string(opened.size()) + " shard files (at most " +
                    std::to_string(kMaxShards) + ")");
      for (auto& [file, at] : opened) {
        if (!exists(dir + "/" + file)) {
          const std::string& first = std::find_if(map->object.begin(), map->object.end(), [&, f = file](const auto& kv) {
            return kv.second.text == f;
          })->first;
          throw Error(index + ": shard '" + file + "' (for tensor '" + first + "') is missing");
        }
        files_.push_back(open_shard(dir, file));
        at = files_.size() - 1;
      }
      for (const auto& [name, file] : map->object) where_[name] = opened.at(file.text);
    } else if (exists(single)) {
      files_.push_back(open_shard(dir, "model.safetensors"));
      for (const auto& n : files_[0]->names()) where_[n] = 0;
    } else {
      throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
    }
  }

  bool has(const std::string& name) const { return where_.count(name) != 0; }

  // A float tensor of exactly this shape, or an error naming file, tensor and field.
  TensorView get(const std::string& name, const std::vector<int64_t>& shape) const {
    return get_as(name, shape, false);
  }
  // A float or I8 tensor of exactly this shape.
  TensorView get_linear(const std::string& name, const std::vector<int64_t>& shape) const {
    return get_as(name, shape, true);
  }
  // The file that holds `name` (for messages).
  const std::string& file_of(const std::string& name) const { return files_[where_.at(name)]->path(); }

 private:
  TensorView get_as(const std::string& name, const std::vector<int64_t>& shape, bool allow_i8) const {
    auto it = where_.find(name);
    if (it == where_.end())
      throw Error((index_path_.empty() ? files_[0]->path() : index_path_) + ": tensor '" + name + "' is missing");
    const SafetensorsFile& f = *files_[it->second];
    if (!f.has(name) && index_path_.size())
      throw Error(index_path_ + ": maps tensor '" + name + "' to " + f.path() + ", which does not hold it");
    const TensorView& t = f.get(name);
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16 && !(allow_i8 && t.dtype == DType::kI8))
      throw Error(f.path() + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) + "; expected F32, F16 or BF16" +
                  (allow_i8 ? " (or I8 with a '_scale' from `gyre quantize`)" : ""));
    if (t.shape != shape)
      throw Error(f.path() + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " +
                  shape_str(shape) + " from config.json");
    return t;
  }


 public:
  std::vector<std::unique_ptr<SafetensorsFile>> release() { return std::move(files_); }

 private:
  std::string index_path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;
};

// A linear weight: float, or I8 with its F32 [out] scale `<name>_scale`.
struct Linear {
  TensorView* w;
  TensorView* scale;
  std::string name;
};

// Quantizes `lin` into buffers `m` owns (rows split over threads; the result does not depend
// on the split).
void quantize_into(ModelWeights& m, Linear& lin) {
  const int64_t rows = lin.w->shape[0], cols = lin.w->shape[1];
  std::vector<char> qbuf(static_cast<size_t>(rows * cols)), sbuf(static_cast<size_t>(rows) * sizeof(float));
  int8_t* q = reinterpret_cast<int8_t*>(qbuf.data());
  float* sc = reinterpret_cast<float*>(sbuf.data());
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), rows / 64));
  std::vector<std::thread> pool;
  std::exception_ptr err;
  std::mutex err_mu;
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
    pool.emplace_back([&, r0, r1] {
      try {
        TensorView part = *lin.w;
        part.shape = {r1 - r0, cols};
        part.data = static_cast<const char*>(lin.w->data) + r0 * cols * dtype_size(lin.w->dtype);
        quantize_int8_rows(part, q + r0 * cols, sc + r0);
      } catch (...) {
        std::lock_guard<std::mutex> lock(err_mu);
        err = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (err) {
    try {
      std::rethrow_exception(err);
    } catch (const std::exception& e) {
      throw Error("quantizing '" + lin.name + "' to int8: " + e.what());
    }
  }
  *lin.w = TensorView{DType::kI8, {rows, cols}, qbuf.data(), qbuf.size()};
  *lin.scale = TensorView{DType::kF32, {rows}, sbuf.data(), sbuf.size()};
  m.owned.push_back(std::move(qbuf));
  m.owned.push_back(std::move(sbuf));
}

}  // namespace

int64_t ModelWeights::linear_weight_bytes() const {
  int64_t n = 0;
  for (const LayerWeights& l : layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down, &l.wq_scale, &l.wk_scale,
                                &l.wv_scale, &l.wo_scale, &l.w_gate_scale, &l.w_up_scale, &l.w_down_scale})
      n += static_cast<int64_t>(t->nbytes);
  return n;
}

void quantize_weights(ModelWeights& m, bool quantize_lm_head) {
  m.quantization = Quantization::kInt8;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LayerWeights& w = m.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Linear parts[] = {{&w.wq, &w.wq_scale, p + "self_attn.q_proj.weight"},
                      {&w.wk, &w.wk_scale, p + "self_attn.k_proj.weight"},
                      {&w.wv, &w.wv_scale, p + "self_attn.v_proj.weight"},
                      {&w.wo, &w.wo_scale, p + "self_attn.o_proj.weight"},
                      {&w.w_gate, &w.w_gate_scale, p + "mlp.gate_proj.weight"},
                      {&w.w_up, &w.w_up_scale, p + "mlp.up_proj.weight"},
                      {&w.w_down, &w.w_down_scale, p + "mlp.down_proj.weight"}};
    for (Linear& lin : parts)
      if (lin.w->dtype != DType::kI8) quantize_into(m, lin);
  }
  if (quantize_lm_head && m.lm_head.dtype != DType::kI8) {
    Linear lm{&m.lm_head, &m.lm_head_scale, "lm_head.weight"};
    quantize_into(m, lm);
  }
}

std::unique_ptr<ModelWeights> load_model(const std::string& dir, const LoadOptions& options) {
  auto m = std::make_unique<ModelWeights>();
  m->config = load_config(dir);
  const ModelConfig& c = m->config;
  TensorSource src(dir);
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_out = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_out = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;

  m->embed = src.get("model.embed_tokens.weight", {V, H});
  m->final_norm = src.get("model.norm.weight", {H});
  m->layers.resize(static_cast<size_t>(c.num_layers));
  std::vector<Linear> linears;
  // A linear weight as stored; an I8 one with its scale, checked.
  auto linear = [&](const std::string& name, const std::vector<int64_t>& shape, TensorView* w, TensorView* scale) {
    *w = src.get_linear(name, shape);
    if (w->dtype == DType::kI8) {
      const std::string sname = name + "_scale";
      if (!src.has(sname))
        throw Error(src.file_of(name) + ": tensor '" + name + "' is I8 but its scale '" + sname + "' is missing");
      *scale = src.get(sname, {shape[0]});
      if (scale->dtype != DType::kF32)
        throw Error(src.file_of(sname) + ": tensor '" + sname + "' has dtype " + dtype_name(scale->dtype) +
                    "; expected F32");
    }
    linears.push_back(Linear{w, scale, name});
  };
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& w = m->layers[static_cast<size_t>(l)];
    w.input_norm = src.get(p + "input_layernorm.weight", {H});
    linear(p + "self_attn.q_proj.weight", {q_out, H}, &w.wq, &w.wq_scale);
    linear(p + "self_attn.k_proj.weight", {kv_out, H}, &w.wk, &w.wk_scale);
    linear(p + "self_attn.v_proj.weight", {kv_out, H}, &w.wv, &w.wv_scale);
    linear(p + "self_attn.o_proj.weight", {H, q_out}, &w.wo, &w.wo_scale);
    w.post_norm = src.get(p + "post_attention_layernorm.weight", {H});
    linear(p + "mlp.gate_proj.weight", {I, H}, &w.w_gate, &w.w_gate_scale);
    linear(p + "mlp.up_proj.weight", {I, H}, &w.w_up, &w.w_up_scale);
    linear(p + "mlp.down_proj.weight", {H, I}, &w.w_down, &w.w_down_scale);
  }
  // Every layer int8 or none: a half-quantized model is a broken file, not a choice.
  int num_i8 = 0;
  for (const Linear& lin : linears) num_i8 += lin.w->dtype == DType::kI8;
  if (num_i8 != 0 && num_i8 != static_cast<int>(linears.size())) {
    const Linear& i8 = *std::find_if(linears.begin(), linears.end(), [](const Linear& x) { return x.w->dtype == DType::kI8; });
    const Linear& fl = *std::find_if(linears.begin(), linears.end(), [](const Linear& x) { return x.w->dtype != DType::kI8; });
    throw Error(src.file_of(fl.name) + ": tensor '" + fl.name + "' is " + dtype_name(fl.w->dtype) + " but '" + i8.name +
                "' is I8; an int8 model has every layer's linear weights in I8");
  }
  const bool stored_int8 = !linears.empty() && num_i8 == static_cast<int>(linears.size());
  if (stored_int8 && !c.gyre_int8)
    throw Error(dir + "/config.json: the weights are I8 but quantization_config.quant_method is not gyre_int8");
  if (!stored_int8 && c.gyre_int8 && !linears.empty())
    throw Error(dir + "/config.json: quantization_config says gyre_int8 but tensor '" + linears[0].name + "' is " +
                dtype_name(linears[0].w->dtype));
  m->dtype = linears.empty() || stored_int8 ? m->embed.dtype : linears[0].w->dtype;
  for (const Linear& lin : linears)
    if (lin.w->dtype != DType::kI8 && lin.w->dtype != m->dtype)
      throw Error(src.file_of(lin.name) + ": tensor '" + lin.name + "' has dtype " + dtype_name(lin.w->dtype) + " but '" +
                  linears[0].name + "' has " + dtype_name(m->dtype) + "; the linear weights share one dtype");

  // The LM head: a stored I8 one wins (also for tied models, whose embedding stays float).
  if (src.has("lm_head.weight") && src.get_linear("lm_head.weight", {V, H}).dtype == DType::kI8) {
    linear("lm_head.weight", {V, H}, &m->lm_head, &m->lm_head_scale);
  } else if (c.tie_word_embeddings) {
    m->lm_head = m->embed;
  } else {
    if (!src.has("lm_head.weight"))
      throw Error(dir + ": tensor 'lm_head.weight' is missing and config.json has tie_word_embeddings false");
    m->lm_head = src.get("lm_head.weight", {V, H});
  }

  if (options.quantization == Quantization::kInt8 || stored_int8) quantize_weights(*m, options.quantize_lm_head);
  m->files = src.release();
  return m;
}

}  // namespace gyre
