// The CUDA forward pass. Per layer:
//   add_rms_norm -> qkv gemm -> rope_and_cache -> decode / prefill attention -> o gemm
//   -> add_rms_norm -> gate_up gemm -> silu_and_mul -> down gemm
// and at the end the final norm and lm_head on the logits rows only.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cuda/activation.cuh"
#include "cuda/decode_attention.cuh"
#include "cuda/embedding.cuh"
#include "cuda/flash_prefill.cuh"
#include "cuda/gemm.cuh"
#include "cuda/memory_budget.h"
#include "cuda/norm.cuh"
#include "cuda/prefill_attention.cuh"
#include "cuda/rope.cuh"

namespace gyre {
namespace {

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

// C = A . W^T with W in the activation dtype, or int8 with a float32 scale per row of W.
void linear(DType dt, const void* A, int lda, const void* W, const float* scale, float* C, int ldc, int M, int N, int K,
            cudaStream_t stream) {
  if (scale) gemm_int8(dt, A, lda, static_cast<const int8_t*>(W), scale, C, ldc, M, N, K, stream);
  else gemm(dt, A, lda, W, C, ldc, M, N, K, stream);
}

}  // namespace

CudaBackend::CudaBackend(std::shared_ptr<ModelWeights> weights)
    : w_(std::move(weights)),
      dt_(w_->dtype == DType::kBF16 ? DType::kBF16 : DType::kF16),
      sampler_(w_->config.vocab_size) {
  const ModelConfig& c = w_->config;
  if (c.hidden_size % 8 || c.intermediate_size % 8 || c.head_dim % 8)
    throw Error("backend 'cuda': hidden_size, intermediate_size and head_dim must be multiples of 8");
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  int device = 0;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  sm_count_ = std::max(1, prop.multiProcessorCount);
  const int group = c.num_heads / c.num_kv_heads;
  flash_prefill_ = flash_prefill_supported(c.head_dim, group);
  prefill_tile_tokens_ = flash_prefill_ ? flash_prefill_tile_tokens(group) : kPrefillTileQ;
  if (const char* g = std::getenv("GYRE_CUDA_GRAPHS")) graphs_enabled_ = std::string(g) != "0";
  if (const char* g = std::getenv("GYRE_GPU_SAMPLING")) device_sampling_ = std::string(g) != "0";
  upload_weights();
  rope_.init(c);
  gemm_prepare();
}

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (meta_host_) cudaFreeHost(meta_host_);
  if (stream_) cudaStreamDestroy(stream_);
}

int64_t CudaBackend::kv_bytes_per_block() const {
  const ModelConfig& c = w_->config;
  return kv_bytes_per_token(c, static_cast<int>(dtype_size(dt_))) * block_size_;
}

int CudaBackend::allocate_kv_cache(const KvCacheSpec& spec) {
  if (spec.block_size <= 0) throw Error("KV cache: block_size must be positive");
  k_cache_ = DeviceBuffer();
  v_cache_ = DeviceBuffer();
  num_blocks_ = 0;
  block_size_ = spec.block_size;
  reserve_step(spec.step);  // before the budget is read: the largest step never allocates
  const MemoryBudget budget = read_memory_budget(spec.gpu_memory);
  const int64_t per_block = kv_bytes_per_block();
  const int64_t fit = budget.kv_blocks(per_block);  // as plan_gpu_memory() counts it
  int64_t blocks = fit;
  if (spec.num_blocks > 0) blocks = spec.num_blocks;
  else if (spec.max_tokens > 0) blocks = (spec.max_tokens + block_size_ - 1) / block_size_;
  else if (spec.max_bytes > 0) blocks = spec.max_bytes / per_block;
  if (blocks < 1 || blocks > fit || blocks > INT32_MAX)
    throw Error("KV cache: " + std::to_string(blocks) + " blocks of " + std::to_string(per_block) +
                " bytes do not fit the GPU memory budget (" + budget.describe() + ")");
  const size_t half_bytes = static_cast<size_t>(blocks) * per_block / 2;
  k_cache_.reserve(half_bytes);
  v_cache_.reserve(half_bytes);
  // Cleared once: a kernel that read a never-written slot would see zeros, not stale NaN bits.
  CUDA_CHECK(cudaMemsetAsync(k_cache_.get(), 0, half_bytes, stream_));
  CUDA_CHECK(cudaMemsetAsync(v_cache_.get(), 0, half_bytes, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  num_blocks_ = static_cast<int>(blocks);
  return num_blocks_;
}

void CudaBackend::reserve_step(const StepPlan& plan) {
  const ModelConfig& c = w_->config;
  const int tokens = std::max(1, plan.max_num_batched_tokens);
  const int seqs = std::max(1, std::min(plan.max_num_seqs, tokens));
  ensure_activations(tokens);
  if (seqs > act_rows_) {  // sized as gyre/gpu_memory.h's logits_bytes_per_row
    sel_.reserve(size_t(seqs) * c.hidden_size * dtype_size(dt_));
    logits_.reserve(size_t(seqs) * c.vocab_size * 4);
    act_rows_ = seqs;
  }
  const int splits = decode_num_splits(max_visible_keys(c, plan.max_model_len));
  workspace_.reserve(sizeof(float) * decode_attention_workspace(seqs, c.num_heads, splits, c.head_dim));
  plan_visible_keys_ = max_visible_keys(c, plan.max_model_len);
}

int64_t CudaBackend::step_buffer_bytes() const {
  int64_t n = 0;
  for (const DeviceBuffer* b : {&h_, &tmp_, &qkv_, &gate_up_, &x_, &q_, &attn_, &act_, &sel_, &logits_, &workspace_})
    n += static_cast<int64_t>(b->bytes());
  return n;
}

void CudaBackend::ensure_activations(int T) {  // sized as gyre/gpu_memory.h's activation_bytes_per_token
  const ModelConfig& c = w_->config;
  const size_t H = c.hidden_size, I = c.intermediate_size, QO = size_t(c.num_heads) * c.head_dim;
  const size_t QKV = QO + 2 * size_t(c.num_kv_heads) * c.head_dim, e = dtype_size(dt_);
  if (T > act_tokens_) {
    const size_t t = static_cast<size_t>(T);
    h_.reserve(t * H * 4); tmp_.reserve(t * H * 4); qkv_.reserve(t * QKV * 4); gate_up_.reserve(t * 2 * I * 4);
    x_.reserve(t * H * e); q_.reserve(t * QO * e); attn_.reserve(t * QO * e); act_.reserve(t * I * e);
    act_tokens_ = T;
  }
}

void CudaBackend::upload_batch(const Batch& b, int rows, int width, DeviceBuffer& dst) {
  const ModelConfig& c = w_->config;
  const int T = b.num_tokens(), S = b.num_seqs();
  const int half = c.head_dim / 2;
  const int P = std::max(rows, T);  // padding rows (pure decode only): one empty sequence each
  std::vector<int32_t> ids(b.token_ids), positions(b.positions), seq_of(P), decode, logits_rows(b.logits_indices);
  std::vector<int64_t> slots(b.slot_mapping);
  std::vector<PrefillTile> tiles;
  int max_visible = 0;  // keys the decode tokens see: min(p + 1, window)
  for (int s = 0; s < S; ++s) {
    const int begin = b.query_start[s], end = b.query_start[s + 1];
    for (int t = begin; t < end; ++t) seq_of[t] = s;
    if (end - begin == 1) {
      decode.push_back(begin);
      const int p = b.positions[begin];
      max_visible = std::max(max_visible, c.sliding_window > 0 ? std::min(p + 1, c.sliding_window) : p + 1);
    } else {
      for (int t = begin; t < end; t += prefill_tile_tokens_)
        tiles.push_back({s, t, std::min(prefill_tile_tokens_, end - t)});
    }
  }
  for (int t = T; t < P; ++t) {  // no K/V written (slot -1), no block: no key visible
    ids.push_back(0);
    positions.push_back(0);
    slots.push_back(-1);
    seq_of[t] = S + (t - T);
    decode.push_back(t);
    logits_rows.push_back(t);
  }
  const int num_seqs = S + (P - T);
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs) * width, -1);
  const int copy = std::min(width, b.max_blocks_per_seq);
  for (int s = 0; s < S; ++s)
    std::copy_n(b.block_tables.begin() + static_cast<size_t>(s) * b.max_blocks_per_seq, copy,
                tables.begin() + static_cast<size_t>(s) * width);
  // Tiles that see the most keys first, so the longest blocks do not start last (a shorter tail).
  auto keys_seen = [&](const PrefillTile& t) {
    const int p = b.positions[t.first + t.count - 1] + 1;
    return c.sliding_window > 0 ? std::min(p, c.sliding_window + t.count - 1) : p;
  };
  std::stable_sort(tiles.begin(), tiles.end(),
                   [&](const PrefillTile& x, const PrefillTile& y) { return keys_seen(x) > keys_seen(y); });
  num_decode_ = static_cast<int>(decode.size());
  const PagedKv shape{nullptr, nullptr, nullptr, 0, block_size_, c.num_heads, c.num_kv_heads, c.head_dim,
                      c.sliding_window, 1.0f};
  num_splits_ = decode_attention_splits(shape, num_decode_, max_visible, sm_count_);
  if (num_decode_ > 0) {  // within the workspace gyre/gpu_memory.h planned (reserve_step)
    const int64_t rows = workspace_.bytes() / (sizeof(float) * decode_attention_workspace(1, c.num_heads, 1, c.head_dim));
    num_splits_ = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_splits_, rows / num_decode_)));
  }
  num_tiles_ = static_cast<int>(tiles.size());
  rope_.compute(c, positions.data(), P);
  const int RP = static_cast<int>(logits_rows.size());

  // One packed buffer, each part 256-byte aligned.
  struct Part { const void* src; size_t bytes; size_t offset; };
  std::vector<Part> parts;
  size_t total = 0;
  auto add = [&](const void* src, size_t bytes) {
    parts.push_back({src, bytes, total});
    total = align_up(total + bytes);
    return parts.size() - 1;
  };
  const size_t p_ids = add(ids.data(), 4 * size_t(P));
  const size_t p_pos = add(positions.data(), 4 * size_t(P));
  const size_t p_seq = add(seq_of.data(), 4 * size_t(P));
  const size_t p_slots = add(slots.data(), 8 * size_t(P));
  const size_t p_tables = add(tables.data(), 4 * tables.size());
  const size_t p_rows = add(logits_rows.data(), 4 * size_t(RP));
  const size_t p_dec = add(decode.data(), 4 * decode.size());
  const size_t p_tiles = add(tiles.data(), sizeof(PrefillTile) * tiles.size());
  const size_t p_cos = add(rope_.cos.data(), 4 * size_t(P) * half);
  const size_t p_sin = add(rope_.sin.data(), 4 * size_t(P) * half);
  if (total > meta_host_bytes_) {
    if (meta_host_) CUDA_CHECK(cudaFreeHost(meta_host_));
    meta_host_ = nullptr;
    meta_host_bytes_ = 0;
    CUDA_CHECK(cudaMallocHost(&meta_host_, total * 2));
    meta_host_bytes_ = total * 2;
  }
  for (const Part& p : parts)
    if (p.bytes) std::memcpy(static_cast<char*>(meta_host_) + p.offset, p.src, p.bytes);
  dst.reserve(total);
  CUDA_CHECK(cudaMemcpyAsync(dst.get(), meta_host_, total, cudaMemcpyHostToDevice, stream_));
  char* d = dst.get<char>();
  auto at = [&](size_t i) { return d + parts[i].offset; };
  dev_.ids = reinterpret_cast<int32_t*>(at(p_ids));
  dev_.positions = reinterpret_cast<int32_t*>(at(p_pos));
  dev_.seq_of = reinterpret_cast<int32_t*>(at(p_seq));
  dev_.slots = reinterpret_cast<int64_t*>(at(p_slots));
  dev_.block_tables = reinterpret_cast<int32_t*>(at(p_tables));
  dev_.logits_rows = reinterpret_cast<int32_t*>(at(p_rows));
  dev_.decode_tokens = reinterpret_cast<int32_t*>(at(p_dec));
  dev_.tiles = at(p_tiles);
  dev_.cos = reinterpret_cast<float*>(at(p_cos));
  dev_.sin = reinterpret_cast<float*>(at(p_sin));
}

void CudaBackend::enqueue_layers(int T, int width) {
  const ModelConfig& c = w_->config;
  const int H = c.hidden_size, I = c.intermediate_size, d = c.head_dim;
  const int QO = c.num_heads * d, KVO = c.num_kv_heads * d, QKV = QO + 2 * KVO;
  const size_t layer_elems = static_cast<size_t>(num_blocks_) * block_size_ * KVO;
  const size_t e = dtype_size(dt_);
  float* h = h_.get<float>();
  float* tmp = tmp_.get<float>();
  embedding_gather(dt_, dev_.ids, embed_, h, T, H, stream_);
  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    void* kc = k_cache_.get<char>() + l * layer_elems * e;
    void* vc = v_cache_.get<char>() + l * layer_elems * e;
    add_rms_norm(dt_, h, l == 0 ? nullptr : tmp, L.input_norm, nullptr, x_.get(), T, H, c.rms_norm_eps, stream_);
    linear(dt_, x_.get(), H, L.qkv, L.qkv_scale, qkv_.get<float>(), QKV, T, QKV, H, stream_);
    rope_and_cache(dt_, qkv_.get<float>(), dev_.cos, dev_.sin, dev_.slots, q_.get(), kc, vc, T, c.num_heads,
                   c.num_kv_heads, d, stream_);
    const PagedKv kv{kc, vc, dev_.block_tables, width, block_size_, c.num_heads, c.num_kv_heads, d,
                     c.sliding_window, static_cast<float>(std::sqrt(static_cast<double>(d)))};
    decode_attention(dt_, kv, q_.get(), dev_.positions, dev_.seq_of, dev_.decode_tokens, num_decode_, num_splits_,
                     workspace_.get<float>(), attn_.get(), stream_);
    const auto* tiles = static_cast<const PrefillTile*>(dev_.tiles);
    if (flash_prefill_) flash_prefill_attention(dt_, kv, q_.get(), dev_.positions, tiles, num_tiles_, attn_.get(), stream_);
    else prefill_attention(dt_, kv, q_.get(), dev_.positions, tiles, num_tiles_, attn_.get(), stream_);
    linear(dt_, attn_.get(), QO, L.o, L.o_scale, tmp, H, T, H, QO, stream_);
    add_rms_norm(dt_, h, tmp, L.post_norm, nullptr, x_.get(), T, H, c.rms_norm_eps, stream_);
    linear(dt_, x_.get(), H, L.gate_up, L.gate_up_scale, gate_up_.get<float>(), 2 * I, T, 2 * I, H, stream_);
    silu_and_mul(dt_, gate_up_.get<float>(), act_.get(), T, I, stream_);
    linear(dt_, act_.get(), I, L.down, L.down_scale, tmp, H, T, H, I, stream_);
  }
}

void CudaBackend::enqueue_logits(int r0, int rows) {
  const ModelConfig& c = w_->config;
  add_rms_norm(dt_, h_.get<float>(), tmp_.get<float>(), final_norm_, dev_.logits_rows + r0, sel_.get(), rows,
               c.hidden_size, c.rms_norm_eps, stream_);
  linear(dt_, sel_.get(), c.hidden_size, lm_head_, lm_head_scale_, logits_.get<float>(), c.vocab_size, rows,
         c.vocab_size, c.hidden_size, stream_);
}

std::vector<const void*> CudaBackend::graph_buffers() const {
  return {h_.get(), tmp_.get(), qkv_.get(), gate_up_.get(), x_.get(), q_.get(), attn_.get(), act_.get(),
          sel_.get(), logits_.get(), workspace_.get(), k_cache_.get(), v_cache_.get()};
}

// A pure decode step whose padded size fits the step plan (so nothing allocates): the graph for
// its padded size, its decode splits chosen for the plan's longest context (eager steps choose
// them for the batch's, so the two may round differently).
bool CudaBackend::forward_graph(const Batch& b, float* logits) {
  const ModelConfig& c = w_->config;
  const int S = b.num_seqs();
  const int P = DecodeGraphs::padded_size(S);
  if (!graphs_enabled_ || P == 0 || P > act_rows_ || P > act_tokens_ || b.num_tokens() != S ||
      static_cast<int>(b.logits_indices.size()) != S)
    return false;
  for (int s = 0; s < S; ++s)
    if (b.query_start[s + 1] != s + 1 || b.logits_indices[s] != s) return false;
  // One split count per padded size (it is captured in the grid): any count is right, since each
  // token divides its own visible keys into that many parts.
  const PagedKv shape{nullptr, nullptr, nullptr, 0, block_size_, c.num_heads, c.num_kv_heads, c.head_dim,
                      c.sliding_window, 1.0f};
  const int64_t rows = workspace_.bytes() / (sizeof(float) * decode_attention_workspace(1, c.num_heads, 1, c.head_dim));
  if (rows < P) return false;
  const int splits = static_cast<int>(
      std::min<int64_t>(decode_attention_splits(shape, P, std::max(1, plan_visible_keys_), sm_count_), rows / P));
  while (graph_width_ < std::max(16, b.max_blocks_per_seq)) graph_width_ = std::max(16, graph_width_ * 2);
  DecodeGraphs::Graph& g = graphs_.slot(P, graph_width_, graph_buffers());
  upload_batch(b, P, graph_width_, g.meta);
  num_splits_ = splits;
  if (!g.exec)
    graphs_.capture(g, stream_, [&] {
      enqueue_layers(P, graph_width_);
      enqueue_logits(0, P);
    });
  graphs_.launch(g, stream_);
  if (logits)
    CUDA_CHECK(cudaMemcpyAsync(logits, logits_.get(), sizeof(float) * S * c.vocab_size, cudaMemcpyDeviceToHost,
                               stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return true;
}

void CudaBackend::forward(const Batch& b, float* logits) {
  const ModelConfig& c = w_->config;
  const int T = b.num_tokens();
  if (T == 0) return;
  if (num_blocks_ == 0) throw Error("forward: the KV cache is not allocated");
  for (int id : b.token_ids)
    if (id < 0 || id >= c.vocab_size) throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary");
  const int64_t num_slots = static_cast<int64_t>(num_blocks_) * block_size_;
  for (int64_t s : b.slot_mapping)
    if (s >= num_slots) throw Error("forward: slot " + std::to_string(s) + " is outside the KV cache");
  if (forward_graph(b, logits)) return;
  const int R = static_cast<int>(b.logits_indices.size());
  if (!logits && R > act_rows_)
    throw Error("forward: " + std::to_string(R) + " logits rows stay on the device, past the " +
                std::to_string(act_rows_) + " the step holds");
  ensure_activations(T);  // within the planned step, nothing grows
  upload_batch(b, T, b.max_blocks_per_seq, meta_);
  if (num_decode_ > 0)
    workspace_.reserve(sizeof(float) * decode_attention_workspace(num_decode_, c.num_heads, num_splits_, c.head_dim));
  enqueue_layers(T, b.max_blocks_per_seq);
  // Logits in chunks of the rows reserved (one per sequence): only prompt-logits steps need more
  // than one chunk, and the buffer never grows. Stream order keeps a chunk's copy before the next.
  // Without host logits (the device samples) they stay in logits_.
  const int V = c.vocab_size;
  for (int r0 = 0; r0 < R; r0 += act_rows_) {
    const int rows = std::min(act_rows_, R - r0);
    enqueue_logits(r0, rows);
    if (logits)
      CUDA_CHECK(cudaMemcpyAsync(logits + static_cast<size_t>(r0) * V, logits_.get(), sizeof(float) * rows * V,
                                 cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // logits are on the host; the pinned metadata is free
}

void CudaBackend::sample(const std::vector<SampleRequest>& requests, std::vector<SampledToken>& out) {
  sampler_.sample(logits_.get<float>(), requests, out, stream_);
}

bool cuda_device_available() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);  // no driver or no device: an error, not a crash
  if (e != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<ModelWeights> weights) {
  return std::make_unique<CudaBackend>(std::move(weights));
}

}  // namespace gyre
