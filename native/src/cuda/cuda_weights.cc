// Weight upload: every tensor goes from the mmap'd safetensors through two pinned staging
// buffers (fill one while the other is copying), converted on the host to the device dtype:
// linear weights and the embedding to the activation dtype, norms to float32. INT8 linear
// weights are copied as they are, with their float32 scales. A tensor without data gets its
// values from the model's TensorFiller (gyre/weights.h) instead.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/simd.h"
#include "cuda/cuda_backend.h"

namespace gyre {
namespace {

constexpr size_t kStagingBytes = 16u << 20;
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

float load_f32(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::kF32: return t.as<float>()[i];
    case DType::kF16: return half_to_float(t.as<uint16_t>()[i]);
    case DType::kBF16: return bf16_to_float(t.as<uint16_t>()[i]);
    default: throw Error("CUDA upload: unsupported tensor dtype " + std::string(dtype_name(t.dtype)));
  }
}

// An int8 linear weight: I8 [rows, cols], cols a multiple of 16 (16-byte rows for gemm_int8),
// and a float32 scale [rows].
void check_int8(const TensorView& w, const TensorView& scale, const std::string& name) {
  if (w.dtype != DType::kI8)
    throw Error("CUDA upload: " + name + " is " + dtype_name(w.dtype) + " where the other linear weights are I8");
  if (w.shape.size() != 2 || w.shape[1] % 16 != 0)
    throw Error("CUDA upload: int8 " + name + " must be [out, in] with in a multiple of 16, got " + shape_str(w.shape));
  if (scale.dtype != DType::kF32 || scale.numel() != w.shape[0])
    throw Error("CUDA upload: " + name + " scale must be F32 [" + std::to_string(w.shape[0]) + "], got " +
                dtype_name(scale.dtype) + " " + shape_str(scale.shape));
}

class Uploader {
 public:
  explicit Uploader(cudaStream_t stream) : stream_(stream) {
    for (int i = 0; i < 2; ++i) {
      CUDA_CHECK(cudaMallocHost(&staging_[i], kStagingBytes));
      CUDA_CHECK(cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming));
    }
  }
  ~Uploader() {
    cudaStreamSynchronize(stream_);
    for (int i = 0; i < 2; ++i) { cudaFreeHost(staging_[i]); cudaEventDestroy(done_[i]); }
  }
  // Copies all of `src` to `dst` as `to` (f16, bf16 or f32).
  void copy(const TensorView& src, DType to, void* dst) {
    const size_t out_size = dtype_size(to), n = static_cast<size_t>(src.numel());
    const size_t per_chunk = kStagingBytes / out_size;
    for (size_t begin = 0; begin < n; begin += per_chunk) {
      const size_t count = std::min(per_chunk, n - begin);
      CUDA_CHECK(cudaEventSynchronize(done_[cur_]));  // this buffer's previous copy is done
      char* buf = static_cast<char*>(staging_[cur_]);
      if (src.dtype == to) {
        std::memcpy(buf, static_cast<const char*>(src.data) + begin * out_size, count * out_size);
      } else if (to == DType::kF32) {
        float* f = reinterpret_cast<float*>(buf);
        for (size_t i = 0; i < count; ++i) f[i] = load_f32(src, static_cast<int64_t>(begin + i));
      } else {
        uint16_t* h = reinterpret_cast<uint16_t*>(buf);
        for (size_t i = 0; i < count; ++i) h[i] = float_to_bits(load_f32(src, static_cast<int64_t>(begin + i)), to);
      }
      CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + begin * out_size, buf, count * out_size,
                                 cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(cudaEventRecord(done_[cur_], stream_));
      cur_ ^= 1;
    }
  }

 private:
  cudaStream_t stream_;
  void* staging_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
  int cur_ = 0;
};

}  // namespace

void CudaBackend::upload_weights() {
  // Pass 1 lays the tensors out in one allocation; pass 2 copies them.
  // `role`: for the filler of a tensor without data.
  struct Item { const TensorView* src; DType to; size_t offset; WeightRole role; };
  std::vector<Item> items;
  size_t total = 0;
  auto place = [&](const TensorView& t, DType to, WeightRole role) {
    items.push_back({&t, to, total, role});
    return total;
  };
  auto reserve = [&](size_t bytes) { total = align_up(total + bytes); };
  auto add = [&](const TensorView& t, DType to, WeightRole role) {
    const size_t off = place(t, to, role);
    reserve(static_cast<size_t>(t.numel()) * dtype_size(to));
    return off;
  };
  // Stacked matrices: consecutive rows of one region (each part's bytes are a multiple of 16);
  // int8 scales are stacked the same way.
  auto add_stacked = [&](std::vector<const TensorView*> parts, DType to, WeightRole role) {
    const size_t start = total;
    size_t bytes = 0;
    for (const TensorView* p : parts) {
      items.push_back({p, to, start + bytes, role});
      bytes += static_cast<size_t>(p->numel()) * dtype_size(to);
    }
    reserve(bytes);
    return start;
  };
  constexpr size_t kNone = SIZE_MAX;
  struct Offsets {
    size_t qkv, o, gate_up, down, in_norm, post_norm;
    size_t qkv_s = kNone, o_s = kNone, gate_up_s = kNone, down_s = kNone;  // int8 scales
  };
  std::vector<Offsets> offs;
  for (size_t i = 0; i < w_->layers.size(); ++i) {
    const LayerWeights& l = w_->layers[i];
    const bool i8 = l.wq.dtype == DType::kI8 || l.wk.dtype == DType::kI8 || l.wv.dtype == DType::kI8 ||
                    l.wo.dtype == DType::kI8 || l.w_gate.dtype == DType::kI8 || l.w_up.dtype == DType::kI8 ||
                    l.w_down.dtype == DType::kI8;
    const DType to = i8 ? DType::kI8 : dt_;
    Offsets o;
    if (i8) {
      const std::string p = "layer " + std::to_string(i) + " ";
      check_int8(l.wq, l.wq_scale, p + "wq");
      check_int8(l.wk, l.wk_scale, p + "wk");
      check_int8(l.wv, l.wv_scale, p + "wv");
      check_int8(l.wo, l.wo_scale, p + "wo");
      check_int8(l.w_gate, l.w_gate_scale, p + "w_gate");
      check_int8(l.w_up, l.w_up_scale, p + "w_up");
      check_int8(l.w_down, l.w_down_scale, p + "w_down");
    }
    o.qkv = add_stacked({&l.wq, &l.wk, &l.wv}, to, WeightRole::kMatrix);
    o.o = add(l.wo, to, WeightRole::kMatrix);
    o.gate_up = add_stacked({&l.w_gate, &l.w_up}, to, WeightRole::kMatrix);
    o.down = add(l.w_down, to, WeightRole::kMatrix);
    if (i8) {
      o.qkv_s = add_stacked({&l.wq_scale, &l.wk_scale, &l.wv_scale}, DType::kF32, WeightRole::kScale);
      o.o_s = add(l.wo_scale, DType::kF32, WeightRole::kScale);
      o.gate_up_s = add_stacked({&l.w_gate_scale, &l.w_up_scale}, DType::kF32, WeightRole::kScale);
      o.down_s = add(l.w_down_scale, DType::kF32, WeightRole::kScale);
    }
    o.in_norm = add(l.input_norm, DType::kF32, WeightRole::kNorm);
    o.post_norm = add(l.post_norm, DType::kF32, WeightRole::kNorm);
    offs.push_back(o);
  }
  const size_t embed = add(w_->embed, dt_, WeightRole::kMatrix);
  // Without data (virtual), only the config says whether the LM head is the embedding.
  const bool lm_i8 = w_->lm_head.dtype == DType::kI8;
  const bool tied = !lm_i8 && w_->lm_head.data == w_->embed.data &&
                    (w_->embed.data != nullptr || w_->config.tie_word_embeddings);
  if (lm_i8) check_int8(w_->lm_head, w_->lm_head_scale, "lm_head");
  const size_t lm_head =
      tied ? embed : add(w_->lm_head, lm_i8 ? DType::kI8 : dt_, WeightRole::kMatrix);
  const size_t lm_head_s = lm_i8 ? add(w_->lm_head_scale, DType::kF32, WeightRole::kScale) : kNone;
  const size_t final_norm = add(w_->final_norm, DType::kF32, WeightRole::kNorm);

  weights_.reserve(total);
  char* base = weights_.get<char>();
  {
    Uploader up(stream_);
    uint64_t seed = 0;  // the item's index: filled values depend only on the model's shapes
    for (const Item& it : items) {
      if (it.src->data) up.copy(*it.src, it.to, base + it.offset);
      else if (w_->filler) w_->filler->fill(base + it.offset, it.to, it.src->numel(), it.role, seed, stream_);
      else throw Error("CUDA upload: a " + std::string(dtype_name(it.src->dtype)) + " " + shape_str(it.src->shape) +
                       " tensor has no data, and the model has no filler for it");
      ++seed;
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  auto f32 = [&](size_t off) { return off == kNone ? nullptr : reinterpret_cast<float*>(base + off); };
  for (const Offsets& o : offs)
    layers_.push_back(Layer{base + o.qkv, base + o.o, base + o.gate_up, base + o.down, f32(o.in_norm), f32(o.post_norm),
                            f32(o.qkv_s), f32(o.o_s), f32(o.gate_up_s), f32(o.down_s)});
  embed_ = base + embed;
  lm_head_ = base + lm_head;
  lm_head_scale_ = f32(lm_head_s);
  final_norm_ = reinterpret_cast<float*>(base + final_norm);
}

}  // namespace gyre
