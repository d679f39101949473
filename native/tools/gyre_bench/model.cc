#include "model.h"

#include "gyre/gpu_memory.h"
#include "gyre/shapes.h"
#include "synthetic/virtual_model.h"

namespace gyre_bench {

Model make_model(const Options& o) {
  Model m;
  m.cfg = shape_config(o.shape);
  if (o.layers > 0) m.cfg.num_layers = o.layers;
  m.weights = virtual_model(m.cfg, o.quantization == "int8");
  m.counts = count(*m.weights);
  return m;
}

Counts count(const ModelWeights& w) {
  Counts k;
  const ModelConfig& c = w.config;
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      k.linear_bytes += static_cast<int64_t>(t->nbytes);
      k.linear_params += t->numel();
    }
    for (const TensorView* t : {&l.wq_scale, &l.wk_scale, &l.wv_scale, &l.wo_scale, &l.w_gate_scale, &l.w_up_scale,
                                &l.w_down_scale})
      k.linear_bytes += static_cast<int64_t>(t->nbytes);
    k.norm_bytes += 2LL * c.hidden_size * 4;
  }
  k.norm_bytes += int64_t(c.hidden_size) * 4;
  k.lm_head_bytes = static_cast<int64_t>(w.lm_head.nbytes);
  k.embed_row_bytes = int64_t(c.hidden_size) * 2;
  k.kv_bytes_per_token = gyre::kv_bytes_per_token(c);
  return k;
}

double linear_flops(const ModelConfig& c, int64_t T) {
  const double H = c.hidden_size, I = c.intermediate_size, QO = double(c.num_heads) * c.head_dim,
               KVO = double(c.num_kv_heads) * c.head_dim;
  const double per_layer = (QO + 2 * KVO) * H + H * QO + 2 * I * H + H * I;
  return 2.0 * T * per_layer * c.num_layers;
}

double attention_flops(const ModelConfig& c, int64_t T) {
  return 4.0 * c.num_heads * c.head_dim * (double(T) * (T + 1) / 2) * c.num_layers;
}

Json model_json(const Options& o, const Model& model) {
  const ModelConfig& c = model.cfg;
  const Counts& k = model.counts;
  Json m = Json::obj();
  m.set("shape", o.shape);
  m.set("architecture", c.architecture);
  m.set("layers", c.num_layers);
  m.set("hidden", c.hidden_size);
  m.set("intermediate", c.intermediate_size);
  m.set("heads", c.num_heads);
  m.set("kv_heads", c.num_kv_heads);
  m.set("head_dim", c.head_dim);
  m.set("vocab", c.vocab_size);
  m.set("sliding_window", c.sliding_window);
  m.set("dtype", "f16");
  m.set("quantization", o.quantization);
  m.set("weights", "virtual: random normal values generated on the GPU at upload (no files)");
  m.set("linear_weight_bytes", k.linear_bytes);
  m.set("linear_params", k.linear_params);
  m.set("lm_head_bytes", k.lm_head_bytes);
  m.set("norm_bytes", k.norm_bytes);
  m.set("kv_bytes_per_token", k.kv_bytes_per_token);
  return m;
}

}  // namespace gyre_bench
