#include "cuda/common.cuh"
#include "cuda/prefill_attention.cuh"

namespace gyre {
namespace {

constexpr int BQ = kPrefillTileQ, BK = 16, kThreads = 128;

// Grid (tiles, nh). Rows of q and k are padded to D + 1 floats so that the 16 keys a warp
// reads at once fall in different banks.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) prefill_attention_kernel(
    PagedKv kv, const T* __restrict__ q,          // [T, nh, D]
    const int32_t* __restrict__ positions,        // [T]
    const PrefillTile* __restrict__ tiles,        // [n]
    T* __restrict__ out) {                        // [T, nh, D]
  __shared__ float sq[BQ][D + 1], sk[BK][D + 1], sv[BK][D], so[BQ][D], ss[BQ][BK];
  __shared__ float sm[BQ], sl[BQ], sf[BQ];
  __shared__ int qpos[BQ], qlo[BQ], key_ok[BK];
  __shared__ int range[2];
  const PrefillTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, nh = kv.num_heads, kvh = h / (nh / kv.num_kv_heads);
  const int nkv = kv.num_kv_heads, bs = kv.block_size;
  const int32_t* table = kv.block_tables + static_cast<int64_t>(tile.seq) * kv.max_blocks_per_seq;
  const T* kc = static_cast<const T*>(kv.k_cache);
  const T* vc = static_cast<const T*>(kv.v_cache);

  for (int i = threadIdx.x; i < BQ * D; i += kThreads) {
    const int r = i / D, c = i % D;
    sq[r][c] = r < tile.count ? to_float(q[(static_cast<int64_t>(tile.first + r) * nh + h) * D + c]) : 0.0f;
    so[r][c] = 0.0f;
  }
  if (threadIdx.x < BQ) {
    const int r = threadIdx.x;
    const int p = r < tile.count ? positions[tile.first + r] : -1;
    qpos[r] = p;
    qlo[r] = kv.sliding_window > 0 ? max(0, p - kv.sliding_window + 1) : 0;
    sm[r] = -INFINITY;
    sl[r] = 0.0f;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // keys any query of the tile can see
    int lo = INT_MAX, hi = -1;
    for (int r = 0; r < tile.count; ++r) { lo = min(lo, qlo[r]); hi = max(hi, qpos[r]); }
    range[0] = lo;
    range[1] = hi;
  }
  __syncthreads();
  const int lo = range[0], hi = range[1];

  for (int k0 = lo; k0 <= hi; k0 += BK) {
    for (int i = threadIdx.x; i < BK * D; i += kThreads) {
      const int j = i / D, c = i % D, key = k0 + j;
      const int block = key <= hi ? table[key / bs] : -1;
      float kx = 0.0f, vx = 0.0f;
      if (block >= 0) {
        const int64_t off = ((static_cast<int64_t>(block) * bs + key % bs) * nkv + kvh) * D + c;
        kx = to_float(kc[off]);
        vx = to_float(vc[off]);
      }
      sk[j][c] = kx;
      sv[j][c] = vx;
      if (c == 0) key_ok[j] = block >= 0;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < BQ * BK; i += kThreads) {
      const int r = i / BK, j = i % BK, key = k0 + j;
      float s = -INFINITY;
      if (key_ok[j] && key <= qpos[r] && key >= qlo[r]) {
        float dot = 0.0f;
#pragma unroll 8
        for (int c = 0; c < D; ++c) dot = fmaf(sq[r][c], sk[j][c], dot);
        s = dot / kv.scale;
      }
      ss[r][j] = s;
    }
    __syncthreads();
    if (threadIdx.x < BQ) {  // online softmax, one thread per query row
      const int r = threadIdx.x;
      float bmax = -INFINITY;
      for (int j = 0; j < BK; ++j) bmax = fmaxf(bmax, ss[r][j]);
      const float m_new = fmaxf(sm[r], bmax);
      float sum = 0.0f;
      for (int j = 0; j < BK; ++j) {
        const float e = m_new == -INFINITY ? 0.0f : expf(ss[r][j] - m_new);
        ss[r][j] = e;
        sum += e;
      }
      const float f = m_new == -INFINITY ? 1.0f : expf(sm[r] - m_new);
      sl[r] = sl[r] * f + sum;
      sm[r] = m_new;
      sf[r] = f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < BQ * D; i += kThreads) {
      const int r = i / D, c = i % D;
      float a = so[r][c] * sf[r];
#pragma unroll
      for (int j = 0; j < BK; ++j) a = fmaf(ss[r][j], sv[j][c], a);
      so[r][c] = a;
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < BQ * D; i += kThreads) {
    const int r = i / D, c = i % D;
    if (r < tile.count)
      out[(static_cast<int64_t>(tile.first + r) * nh + h) * D + c] = from_float<T>(sl[r] > 0.0f ? so[r][c] / sl[r] : 0.0f);
  }
}

template <typename T, int D>
void prefill_attention_cuda(const PagedKv& kv, const T* q, const int32_t* positions, const PrefillTile* tiles, int n,
                            T* out, cudaStream_t stream) {
  launch(prefill_attention_kernel<T, D>, dim3(n, kv.num_heads), kThreads, 0, stream, kv, q, positions, tiles, out);
}

}  // namespace

void prefill_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const PrefillTile* tiles,
                       int n, void* out, cudaStream_t stream) {
  if (n == 0) return;
  GYRE_DISPATCH_HALF(dt, GYRE_DISPATCH_HEAD_DIM(kv.head_dim, prefill_attention_cuda<scalar_t, kHeadDim>(
      kv, static_cast<const scalar_t*>(q), positions, tiles, n, static_cast<scalar_t*>(out), stream)));
}

}  // namespace gyre
