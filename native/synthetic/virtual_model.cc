#include "synthetic/virtual_model.h"

#include <utility>
#include <vector>

#ifdef GYRE_HAVE_CUDA
#include "synthetic/random_fill.cuh"
#endif

namespace gyre {
namespace {

#ifdef GYRE_HAVE_CUDA
// Matrices get N(0, 0.02) (uniform integers when I8), norms 1, scales what keeps int8 rows near
// the float matrices' magnitude.
class RandomFiller : public TensorFiller {
 public:
  void fill(void* dst, DType to, int64_t n, WeightRole role, uint64_t seed, void* stream) const override {
    const RandomFill kind = role == WeightRole::kNorm    ? RandomFill::kOnes
                            : role == WeightRole::kScale ? RandomFill::kScale
                            : to == DType::kI8           ? RandomFill::kInt8
                                                         : RandomFill::kNormal;
    random_fill(dst, to, n, kind, seed, static_cast<cudaStream_t>(stream));
  }
};
#endif

}  // namespace

std::shared_ptr<ModelWeights> virtual_model(const ModelConfig& c, bool int8, bool int8_lm_head) {
  auto m = std::make_shared<ModelWeights>();
  m->config = c;
  m->dtype = DType::kF16;
  m->quantization = int8 ? Quantization::kInt8 : Quantization::kNone;
  auto tensor = [](DType dt, std::vector<int64_t> shape) {
    TensorView t;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.nbytes = static_cast<size_t>(t.numel()) * dtype_size(dt);
    return t;  // data == nullptr
  };
  auto linear = [&](TensorView& w, TensorView& scale, int64_t out, int64_t in, bool i8) {
    w = tensor(i8 ? DType::kI8 : DType::kF16, {out, in});
    if (i8) scale = tensor(DType::kF32, {out});
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t QO = int64_t(c.num_heads) * c.head_dim, KVO = int64_t(c.num_kv_heads) * c.head_dim;
  m->embed = tensor(DType::kF16, {V, H});
  m->layers.resize(static_cast<size_t>(c.num_layers));
  for (LayerWeights& l : m->layers) {
    l.input_norm = tensor(DType::kF16, {H});
    l.post_norm = tensor(DType::kF16, {H});
    linear(l.wq, l.wq_scale, QO, H, int8);
    linear(l.wk, l.wk_scale, KVO, H, int8);
    linear(l.wv, l.wv_scale, KVO, H, int8);
    linear(l.wo, l.wo_scale, H, QO, int8);
    linear(l.w_gate, l.w_gate_scale, I, H, int8);
    linear(l.w_up, l.w_up_scale, I, H, int8);
    linear(l.w_down, l.w_down_scale, H, I, int8);
  }
  m->final_norm = tensor(DType::kF16, {H});
  linear(m->lm_head, m->lm_head_scale, V, H, int8 && int8_lm_head);
#ifdef GYRE_HAVE_CUDA
  m->filler = std::make_shared<RandomFiller>();
#endif
  return m;
}

}  // namespace gyre
