#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/decode_attention.cuh"
#include "cuda/mma_ptx.cuh"

namespace gyre {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// How a head dim D is read: 16 bytes (8 elements) per lane, D / 8 lanes per key row.
__host__ __device__ constexpr int decode_lanes_per_key(int d) { return d / 8; }
__host__ __device__ constexpr int decode_chunk(int d) { return 32 / decode_lanes_per_key(d) > 16 ? 32 / decode_lanes_per_key(d) : 16; }
__host__ __device__ constexpr int decode_warps(int d) { return d == 128 ? 2 : 4; }  // 32 KB of stages per block
// Query heads per block: the largest of 8, 4, 2, 1 that divides the group.
int decode_heads_per_block(int group) { return group % 8 == 0 ? 8 : group % 4 == 0 ? 4 : group % 2 == 0 ? 2 : 1; }

template <int D> struct DecodeShape {
  static constexpr int kLanesPerKey = decode_lanes_per_key(D);
  static constexpr int kKeysPerStep = 32 / kLanesPerKey;  // keys a warp reads per 16-byte load
  static constexpr int kChunk = decode_chunk(D);
  static constexpr int kSteps = kChunk / kKeysPerStep;
  static constexpr int kWarps = decode_warps(D);
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStage = 2 * kChunk * D;  // elements: K rows, then V rows
  static size_t smem(int heads) {
    const size_t stages = sizeof(uint16_t) * kWarps * 2 * kStage, merge = sizeof(float) * kWarps * heads * (D + 2);
    return stages > merge ? stages : merge;
  }
};

template <typename T> __device__ __forceinline__ void unpack8(const uint4& u, float (&f)[8]);
template <> __device__ __forceinline__ void unpack8<__half>(const uint4& u, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
template <> __device__ __forceinline__ void unpack8<__nv_bfloat16>(const uint4& u, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

// Copies this lane's pieces of chunk c (keys c * kChunk ..) into `stage` ([K, V][kChunk][D]);
// bit `step` of the result: that step's key is visible. Invisible keys are zero-filled.
template <typename T, int D>
__device__ __forceinline__ unsigned issue_chunk(T* stage, const T* __restrict__ kc, const T* __restrict__ vc,
                                                const int32_t* __restrict__ table, int bs, int nkv, int kvh, int lo,
                                                int p, int c) {
  using S = DecodeShape<D>;
  const int lane = threadIdx.x & 31, col = lane % S::kLanesPerKey, sub = lane / S::kLanesPerKey;
  unsigned visible = 0;
#pragma unroll
  for (int st = 0; st < S::kSteps; ++st) {
    const int key = c * S::kChunk + st * S::kKeysPerStep + sub;
    const int block = key >= lo && key <= p ? table[key / bs] : -1;
    const bool valid = block >= 0;
    const int64_t off = valid ? ((static_cast<int64_t>(block) * bs + key % bs) * nkv + kvh) * D + col * 8 : 0;
    ptx::cp_async16(stage + st * 256 + lane * 8, kc + off, valid);                  // piece (key, col) of K
    ptx::cp_async16(stage + S::kChunk * D + st * 256 + lane * 8, vc + off, valid);  // and of V
    visible |= static_cast<unsigned>(valid) << st;
  }
  return visible;
}

// Grid (n, nkv * G / GB, splits). Lane `lane` of a warp reads columns (lane % LPK) * 8 .. + 7 of
// key (lane / LPK) + KPS * step of a chunk. Scores are in log2 units (q is pre-scaled by
// log2(e) / scale), so partial maxima are too.
template <typename T, int D, int GB>
__global__ void __launch_bounds__(DecodeShape<D>::kThreads, 1) decode_attention_kernel(
    PagedKv kv, const T* __restrict__ q,                   // [T, nh, D]
    const int32_t* __restrict__ positions,                 // [T]
    const int32_t* __restrict__ seq_of,                    // [T]
    const int32_t* __restrict__ tokens,                    // [n]
    float* __restrict__ part_acc,                          // [n, nh, splits, D]
    float* __restrict__ part_ml,                           // [n, nh, splits, 2]
    T* __restrict__ out) {                                 // [T, nh, D] (one split)
  using S = DecodeShape<D>;
  constexpr int LPK = S::kLanesPerKey, CH = S::kChunk, STEPS = S::kSteps, W = S::kWarps;
  GYRE_DYNAMIC_SMEM(char, smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, col = lane % LPK, sub = lane / LPK;
  T* stages = reinterpret_cast<T*>(smem) + warp * 2 * S::kStage;  // this warp's [2][K, V][CH][D]
  const int nh = kv.num_heads, nkv = kv.num_kv_heads, G = nh / nkv, bs = kv.block_size;
  const int kvh = blockIdx.y / (G / GB), h0 = kvh * G + blockIdx.y % (G / GB) * GB;
  const int n = blockIdx.x, split = blockIdx.z, splits = gridDim.z;
  const int t = tokens[n], p = positions[t];
  const int lo = kv.sliding_window > 0 ? max(0, p - kv.sliding_window + 1) : 0;
  const int c_lo = lo / CH, per = (p / CH - c_lo + splits) / splits;  // chunks per split, rounded up
  const int c_begin = c_lo + split * per, c_end = min(p / CH + 1, c_begin + per);
  const int32_t* table = kv.block_tables + static_cast<int64_t>(seq_of[t]) * kv.max_blocks_per_seq;
  const T* kc = static_cast<const T*>(kv.k_cache);
  const T* vc = static_cast<const T*>(kv.v_cache);

  float qr[GB][8], acc[GB][8], m[GB], l[GB];
  const float qscale = kLog2e / kv.scale;
#pragma unroll
  for (int g = 0; g < GB; ++g) {
    unpack8<T>(*reinterpret_cast<const uint4*>(q + (static_cast<int64_t>(t) * nh + h0 + g) * D + col * 8), qr[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      qr[g][e] *= qscale;
      acc[g][e] = 0.0f;
    }
    m[g] = -INFINITY;
    l[g] = 0.0f;
  }

  int c = c_begin + warp;
  unsigned visible = c < c_end ? issue_chunk<T, D>(stages, kc, vc, table, bs, nkv, kvh, lo, p, c) : 0u;
  ptx::cp_async_commit();
  for (int i = 0; c < c_end; ++i, c += W) {
    const int cur = i & 1;
    // Stage cur ^ 1 held the previous chunk, which this lane has read (a lane reads only its own pieces).
    const unsigned next_visible =
        c + W < c_end ? issue_chunk<T, D>(stages + (cur ^ 1) * S::kStage, kc, vc, table, bs, nkv, kvh, lo, p, c + W) : 0u;
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // chunk c is in
    const T* sk = stages + cur * S::kStage;
    const T* sv = sk + CH * D;
    float s[GB][STEPS];
#pragma unroll
    for (int st = 0; st < STEPS; ++st) {  // partial dots over this lane's 8 columns, K in registers
      float kf[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(sk + st * 256 + lane * 8), kf);
#pragma unroll
      for (int g = 0; g < GB; ++g) {
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) d = fmaf(qr[g][e], kf[e], d);
        s[g][st] = d;
      }
    }
#pragma unroll
    for (int g = 0; g < GB; ++g) {
#pragma unroll
      for (int st = 0; st < STEPS; ++st) {
#pragma unroll
        for (int o = LPK / 2; o > 0; o >>= 1) s[g][st] += __shfl_xor_sync(0xffffffffu, s[g][st], o);
        if (!((visible >> st) & 1u)) s[g][st] = -INFINITY;
      }
      float mx = -INFINITY;
#pragma unroll
      for (int st = 0; st < STEPS; ++st) mx = fmaxf(mx, s[g][st]);
#pragma unroll
      for (int o = LPK; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[g], mx), base = m_new == -INFINITY ? 0.0f : m_new;
      const float f = exp2f(m[g] - base);
      m[g] = m_new;
      l[g] *= f;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] *= f;
#pragma unroll
      for (int st = 0; st < STEPS; ++st) {
        s[g][st] = exp2f(s[g][st] - base);
        l[g] += s[g][st];  // this lane's keys only: summed over key groups at the end
      }
    }
#pragma unroll
    for (int st = 0; st < STEPS; ++st) {
      float vf[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(sv + st * 256 + lane * 8), vf);
#pragma unroll
      for (int g = 0; g < GB; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] = fmaf(s[g][st], vf[e], acc[g][e]);
    }
    visible = next_visible;
  }
  ptx::cp_async_wait<0>();

  // Sum over the warp's key groups: lanes 0 .. LPK - 1 then hold the warp's acc for all D columns.
#pragma unroll
  for (int g = 0; g < GB; ++g)
#pragma unroll
    for (int o = LPK; o < 32; o <<= 1) {
      l[g] += __shfl_xor_sync(0xffffffffu, l[g], o);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    }
  __syncthreads();  // every warp is done with its stages: they become the merge buffer
  float* red = reinterpret_cast<float*>(smem);  // [W][GB][D + 2]: acc, then max and sum
  float* mine = red + warp * GB * (D + 2);
  if (sub == 0)
#pragma unroll
    for (int g = 0; g < GB; ++g)
#pragma unroll
      for (int e = 0; e < 8; ++e) mine[g * (D + 2) + col * 8 + e] = acc[g][e];
  if (lane == 0)
#pragma unroll
    for (int g = 0; g < GB; ++g) {
      mine[g * (D + 2) + D] = m[g];
      mine[g * (D + 2) + D + 1] = l[g];
    }
  __syncthreads();
  for (int i = threadIdx.x; i < GB * D; i += S::kThreads) {
    const int g = i / D, d = i % D;
    float M = -INFINITY;
    for (int w = 0; w < W; ++w) M = fmaxf(M, red[(w * GB + g) * (D + 2) + D]);
    float o = 0.0f, L = 0.0f;
    for (int w = 0; w < W; ++w) {
      const float* r = red + (w * GB + g) * (D + 2);
      if (r[D] == -INFINITY) continue;  // a warp with no visible key
      const float e = exp2f(r[D] - M);
      o += r[d] * e;
      L += r[D + 1] * e;
    }
    if (splits == 1) {
      out[(static_cast<int64_t>(t) * nh + h0 + g) * D + d] = from_float<T>(L > 0.0f ? o / L : 0.0f);
    } else {
      const int64_t row = (static_cast<int64_t>(n) * nh + h0 + g) * splits + split;
      part_acc[row * D + d] = o;
      if (d == 0) {
        part_ml[row * 2] = M;
        part_ml[row * 2 + 1] = L;
      }
    }
  }
}

// Grid (n, nh), D threads (at least 32): out = sum_s acc_s 2^(m_s - M) / sum_s l_s 2^(m_s - M).
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
    const float w = exp2f(ml[2 * s] - M);
    L += ml[2 * s + 1] * w;
    if (c < D) o += part_acc[(base * splits + s) * D + c] * w;
  }
  if (c < D) out[(static_cast<int64_t>(tokens[n]) * nh + h) * D + c] = from_float<T>(L > 0.0f ? o / L : 0.0f);
}

template <typename T, int D, int GB>
void decode_attention_cuda(const PagedKv& kv, const T* q, const int32_t* positions, const int32_t* seq_of,
                           const int32_t* tokens, int n, int splits, float* ws, T* out, cudaStream_t stream) {
  using S = DecodeShape<D>;
  const int blocks_per_kv_head = kv.num_heads / kv.num_kv_heads / GB;
  float* part_acc = ws;
  float* part_ml = ws ? ws + static_cast<int64_t>(n) * kv.num_heads * splits * D : nullptr;
  launch(decode_attention_kernel<T, D, GB>, dim3(n, kv.num_kv_heads * blocks_per_kv_head, splits), S::kThreads,
         S::smem(GB), stream, kv, q, positions, seq_of, tokens, part_acc, part_ml, out);
  if (splits > 1)
    launch(decode_merge_kernel<T, D>, dim3(n, kv.num_heads), D < 32 ? 32 : D, 0, stream, tokens, part_acc, part_ml,
           splits, out);
}

template <typename T, int D>
void decode_attention_heads(const PagedKv& kv, const T* q, const int32_t* positions, const int32_t* seq_of,
                            const int32_t* tokens, int n, int splits, float* ws, T* out, cudaStream_t stream) {
  switch (decode_heads_per_block(kv.num_heads / kv.num_kv_heads)) {
    case 8: decode_attention_cuda<T, D, 8>(kv, q, positions, seq_of, tokens, n, splits, ws, out, stream); break;
    case 4: decode_attention_cuda<T, D, 4>(kv, q, positions, seq_of, tokens, n, splits, ws, out, stream); break;
    case 2: decode_attention_cuda<T, D, 2>(kv, q, positions, seq_of, tokens, n, splits, ws, out, stream); break;
    default: decode_attention_cuda<T, D, 1>(kv, q, positions, seq_of, tokens, n, splits, ws, out, stream); break;
  }
}

}  // namespace

int decode_attention_splits(const PagedKv& kv, int n, int max_visible_keys, int sm_count) {
  if (n <= 0 || max_visible_keys <= 0) return 1;
  const int chunk = decode_chunk(kv.head_dim), warps = decode_warps(kv.head_dim);
  const int group = kv.num_heads / kv.num_kv_heads;
  const int64_t blocks = static_cast<int64_t>(n) * kv.num_kv_heads * (group / decode_heads_per_block(group));
  const int64_t want = (2LL * sm_count + blocks - 1) / blocks;
  const int64_t chunks = (max_visible_keys - 1) / chunk + 2;  // an unaligned range touches one more
  const int64_t most = (chunks + warps - 1) / warps;
  return static_cast<int>(std::max<int64_t>(1, std::min(want, most)));
}

void decode_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions, const int32_t* seq_of,
                      const int32_t* tokens, int n, int num_splits, float* workspace, void* out, cudaStream_t stream) {
  if (n == 0) return;
  if (num_splits < 1 || num_splits > 65535) throw Error("decode_attention: num_splits must be in [1, 65535]");
  if (num_splits > 1 && !workspace) throw Error("decode_attention: several splits need a workspace");
  GYRE_DISPATCH_HALF(dt, GYRE_DISPATCH_HEAD_DIM(kv.head_dim, decode_attention_heads<scalar_t, kHeadDim>(
      kv, static_cast<const scalar_t*>(q), positions, seq_of, tokens, n, num_splits, workspace,
      static_cast<scalar_t*>(out), stream)));
}

}  // namespace gyre
