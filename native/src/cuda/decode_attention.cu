#include "cuda/common.cuh"
#include "cuda/decode_attention.cuh"

namespace gyre {
namespace {

constexpr int kThreads = 128;

// Grid (n, nkv, num_splits). Shared memory: k, v [bs][D], q, acc [G][D], s [G][bs], m, l, f [G].
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(
    PagedKv kv, const T* __restrict__ q,                   // [T, nh, D]
    const int32_t* __restrict__ positions,                 // [T]
    const int32_t* __restrict__ seq_of,                    // [T]
    const int32_t* __restrict__ tokens,                    // [n]
    int split_len,
    float* __restrict__ part_acc,                          // [n, nh, splits, D]
    float* __restrict__ part_ml) {                         // [n, nh, splits, 2]
  GYRE_DYNAMIC_SMEM(float, smem);
  const int bs = kv.block_size, nkv = kv.num_kv_heads, G = kv.num_heads / nkv;
  float* sk = smem;
  float* sv = sk + bs * D;
  float* sq = sv + bs * D;
  float* acc = sq + G * D;
  float* ss = acc + G * D;
  float* sm = ss + G * bs;
  float* sl = sm + G;
  float* sf = sl + G;
  const int n = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int t = tokens[n], p = positions[t];
  // The splits tile the visible keys [lo, p] from lo: a window needs min(p + 1, window) keys'
  // worth of splits however long the sequence is.
  const int lo = kv.sliding_window > 0 ? max(0, p - kv.sliding_window + 1) : 0;
  const int k_begin = lo + split * split_len, k_end = min(p + 1, k_begin + split_len);
  const int32_t* table = kv.block_tables + static_cast<int64_t>(seq_of[t]) * kv.max_blocks_per_seq;
  const T* kc = static_cast<const T*>(kv.k_cache);
  const T* vc = static_cast<const T*>(kv.v_cache);

  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    sq[i] = to_float(q[(static_cast<int64_t>(t) * kv.num_heads + kvh * G) * D + i]);
    acc[i] = 0.0f;
  }
  for (int g = threadIdx.x; g < G; g += kThreads) { sm[g] = -INFINITY; sl[g] = 0.0f; }

  for (int start = k_begin - k_begin % bs; start < k_end; start += bs) {
    const int block = table[start / bs];
    if (block < 0) continue;  // released: wholly outside the window
    __syncthreads();          // the previous block's k, v, s are no longer read
    for (int i = threadIdx.x; i < bs * D; i += kThreads) {
      // Slots outside [k_begin, k_end) load as zero: past the query they may never have been
      // written (any bits, NaN and Inf included), and a zero softmax weight times NaN is NaN.
      const int j = i / D, c = i % D, key = start + j;
      float kx = 0.0f, vx = 0.0f;
      if (key >= k_begin && key < k_end) {
        const int64_t off = ((static_cast<int64_t>(block) * bs + j) * nkv + kvh) * D + c;
        kx = to_float(kc[off]);
        vx = to_float(vc[off]);
      }
      sk[i] = kx;
      sv[i] = vx;
    }
    __syncthreads();
    for (int pair = warp; pair < G * bs; pair += kThreads / 32) {
      const int g = pair / bs, j = pair % bs, key = start + j;
      float dot = 0.0f;
      for (int c = lane; c < D; c += 32) dot = fmaf(sq[g * D + c], sk[j * D + c], dot);
      dot = warp_reduce_sum(dot);
      if (lane == 0) ss[g * bs + j] = key >= k_begin && key < k_end ? dot / kv.scale : -INFINITY;
    }
    __syncthreads();
    for (int g = threadIdx.x; g < G; g += kThreads) {  // online softmax, one thread per head
      float bmax = -INFINITY;
      for (int j = 0; j < bs; ++j) bmax = fmaxf(bmax, ss[g * bs + j]);
      const float m_new = fmaxf(sm[g], bmax);
      float sum = 0.0f;
      for (int j = 0; j < bs; ++j) {
        const float e = m_new == -INFINITY ? 0.0f : expf(ss[g * bs + j] - m_new);
        ss[g * bs + j] = e;
        sum += e;
      }
      const float f = m_new == -INFINITY ? 1.0f : expf(sm[g] - m_new);
      sl[g] = sl[g] * f + sum;
      sm[g] = m_new;
      sf[g] = f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += kThreads) {
      const int g = i / D, c = i % D;
      float a = acc[i] * sf[g];
      for (int j = 0; j < bs; ++j) a = fmaf(ss[g * bs + j], sv[j * D + c], a);
      acc[i] = a;
    }
  }
  __syncthreads();
  const int nh = kv.num_heads;
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int g = i / D, c = i % D;
    part_acc[((static_cast<int64_t>(n) * nh + kvh * G + g) * splits + split) * D + c] = acc[i];
  }
  for (int g = threadIdx.x; g < G; g += kThreads) {
    float* ml = part_ml + ((static_cast<int64_t>(n) * nh + kvh * G + g) * splits + split) * 2;
    ml[0] = sm[g];
    ml[1] = sl[g];
  }
}

// Grid (n, nh), D threads (at least 32): out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
template <typename T, int D>
__global__ void decode_merge_kernel(const int32_t* __restrict__ tokens,  // [n]
                                    const float* __restrict__ part_acc,  // [n, nh, splits, D]
                                    const float* __restrict__ part_ml,   // [n, nh, splits, 2]
                                    int splits, T* __restrict__ out) {   // [T, nh, D]
  const int n = blockIdx.x, h = blockIdx.y, nh = gridDim.y, c = threadIdx.x;
  const int64_t base = static_cast<int64_t>(n) * nh + h;
  const float* ml = part_ml + base * splits * 2;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.0f, o = 0.0f;
  for (int s = 0; s < splits; ++s) {
    if (ml[2 * s] == -INFINITY) continue;  // a split with no visible key
    const float w = expf(ml[2 * s] - M);
    L += ml[2 * s + 1] * w;
    if (c < D) o += part_acc[(base * splits + s) * D + c] * w;
  }
  if (c < D) out[(static_cast<int64_t>(tokens[n]) * nh + h) * D + c] = from_float<T>(L > 0.0f ? o / L : 0.0f);
}

template <typename T, int D>
void decode_attention_cuda(const PagedKv& kv, const T* q, const int32_t* positions, const int32_t* seq_of,
                           const int32_t* tokens, int n, int splits, int split_len, float* ws, T* out,
                           cudaStream_t stream) {
  const int G = kv.num_heads / kv.num_kv_heads;
  const size_t smem = sizeof(float) * (2 * kv.block_size * D + 2 * G * D + G * kv.block_size + 3 * G);
  auto kernel = decode_attention_kernel<T, D>;
  if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  float* part_acc = ws;
  float* part_ml = ws + static_cast<int64_t>(n) * kv.num_heads * splits * D;
  launch(kernel, dim3(n, kv.num_kv_heads, splits), kThreads, smem, stream, kv, q, positions, seq_of, tokens, split_len,
                                                                      part_acc, part_ml);
  launch(decode_merge_kernel<T, D>, dim3(n, kv.num_heads), D < 32 ? 32 : D, 0, stream, tokens, part_acc, part_ml, splits,
                                                                                    out);
}

}  // namespace

void decode_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const int32_t* seq_of,
                      const int32_t* tokens, int n, int num_splits, int split_len, float* workspace, void* out,
                      cudaStream_t stream) {
  if (n == 0) return;
  if (split_len <= 0 || split_len % kv.block_size != 0) throw Error("decode_attention: split_len must be a multiple of block_size");
  GYRE_DISPATCH_HALF(dt, GYRE_DISPATCH_HEAD_DIM(kv.head_dim, decode_attention_cuda<scalar_t, kHeadDim>(
      kv, static_cast<const scalar_t*>(q), positions, seq_of, tokens, n, num_splits, split_len, workspace,
      static_cast<scalar_t*>(out), stream)));
}

}  // namespace gyre
