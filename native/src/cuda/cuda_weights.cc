// Weight upload: every tensor goes from the mmap'd safetensors through two pinned staging
// buffers (fill one while the other is copying), converted on the host to the device dtype:
// linear weights and the embedding to the activation dtype, norms to float32.
#include <algorithm>
#include <cstring>

#include "cpu/simd.h"
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
  struct Item { const TensorView* src; DType to; size_t offset; };
  std::vector<Item> items;
  size_t total = 0;
  auto place = [&](const TensorView& t, DType to) {
    items.push_back({&t, to, total});
    return total;
  };
  auto reserve = [&](size_t bytes) { total = align_up(total + bytes); };
  auto add = [&](const TensorView& t, DType to) {
    const size_t off = place(t, to);
    reserve(static_cast<size_t>(t.numel()) * dtype_size(to));
    return off;
  };
  // Stacked matrices: consecutive rows of one region (each part's bytes are a multiple of 16).
  auto add_stacked = [&](std::vector<const TensorView*> parts) {
    const size_t start = total;
    size_t bytes = 0;
    for (const TensorView* p : parts) {
      items.push_back({p, dt_, start + bytes});
      bytes += static_cast<size_t>(p->numel()) * dtype_size(dt_);
    }
    reserve(bytes);
    return start;
  };
  struct Offsets { size_t qkv, o, gate_up, down, in_norm, post_norm; };
  std::vector<Offsets> offs;
  for (const LayerWeights& l : w_->layers) {
    Offsets o;
    o.qkv = add_stacked({&l.wq, &l.wk, &l.wv});
    o.o = add(l.wo, dt_);
    o.gate_up = add_stacked({&l.w_gate, &l.w_up});
    o.down = add(l.w_down, dt_);
    o.in_norm = add(l.input_norm, DType::kF32);
    o.post_norm = add(l.post_norm, DType::kF32);
    offs.push_back(o);
  }
  const size_t embed = add(w_->embed, dt_);
  const bool tied = w_->lm_head.data == w_->embed.data;
  const size_t lm_head = tied ? embed : add(w_->lm_head, dt_);
  const size_t final_norm = add(w_->final_norm, DType::kF32);

  weights_.reserve(total);
  char* base = weights_.get<char>();
  {
    Uploader up(stream_);
    for (const Item& it : items) up.copy(*it.src, it.to, base + it.offset);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (const Offsets& o : offs)
    layers_.push_back(Layer{base + o.qkv, base + o.o, base + o.gate_up, base + o.down,
                            reinterpret_cast<float*>(base + o.in_norm), reinterpret_cast<float*>(base + o.post_norm)});
  embed_ = base + embed;
  lm_head_ = base + lm_head;
  final_norm_ = reinterpret_cast<float*>(base + final_norm);
}

}  // namespace gyre
