#include "cuda/common.cuh"
#include "cuda/flash_prefill.cuh"
#include "cuda/mma_ptx.cuh"

namespace gyre {
namespace {

constexpr int BM = kFlashRows, BN = 64, kWarps = BM / 16, kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;

using ptx::cp_async16;
using ptx::cp_async_commit;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_trans;
using ptx::Mma;

template <typename T> __device__ __forceinline__ unsigned pack2(float lo, float hi);
template <> __device__ __forceinline__ unsigned pack2<__half>(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&h);
}
template <> __device__ __forceinline__ unsigned pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&h);
}

__device__ __forceinline__ int warp_max_int(int x) {
  for (int o = 16; o > 0; o >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ int warp_min_int(int x) {
  for (int o = 16; o > 0; o >>= 1) x = min(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Keys [k0, k0 + BN) of the tile's sequence into dst, 16 bytes per cp.async; keys past `hi` or
// in released blocks are zero-filled and, when `ok` is given, flagged 0 there.
template <typename T, int D>
__device__ __forceinline__ void load_keys(T (*dst)[D + 8], const T* __restrict__ cache, int bs, int nkv,
                                          const int32_t* __restrict__ table, int kvh, int k0, int hi, int* ok) {
  constexpr int PR = D / 8;  // 16-byte pieces per row
  for (int c = threadIdx.x; c < BN * PR; c += kThreads) {
    const int j = c / PR, col = (c % PR) * 8, key = k0 + j;
    const int block = key <= hi ? table[key / bs] : -1;
    const bool valid = block >= 0;
    const T* g = valid ? cache + ((static_cast<int64_t>(block) * bs + key % bs) * nkv + kvh) * D + col : cache;
    cp_async16(&dst[j][col], g, valid);
    if (ok && col == 0) ok[j] = valid;
  }
}

// Grid (tiles, nkv), 128 threads. Row r of a tile: token tile.first + r / G, head kvh * G + r % G.
// At most 128 registers for D = 64 (4 blocks per SM on sm_86; ptxas spills none), 255 for D = 128.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads, D == 64 ? 4 : 2) flash_prefill_kernel(
    PagedKv kv, const T* __restrict__ q,      // [T, nh, D]
    const int32_t* __restrict__ positions,    // [T]
    const PrefillTile* __restrict__ tiles,    // [n]
    T* __restrict__ out) {                    // [T, nh, D]
  constexpr int LDS = D + 8, PR = D / 8;
  GYRE_DYNAMIC_SMEM(char, smem);
  T(*sk)[LDS] = reinterpret_cast<T(*)[LDS]>(smem);                          // [BN][LDS]
  T(*sv)[LDS] = reinterpret_cast<T(*)[LDS]>(smem + sizeof(T) * BN * LDS);   // [BN][LDS]; Q first
  int* key_ok = reinterpret_cast<int*>(smem + 2 * sizeof(T) * BN * LDS);    // [BN]
  const PrefillTile tile = tiles[blockIdx.x];
  if (tile.count <= 0) return;
  const int kvh = blockIdx.y, nh = kv.num_heads, nkv = kv.num_kv_heads, G = nh / nkv, rows = tile.count * G;
  const int bs = kv.block_size;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, window = kv.sliding_window;
  const int32_t* table = kv.block_tables + static_cast<int64_t>(tile.seq) * kv.max_blocks_per_seq;
  const T* kc = static_cast<const T*>(kv.k_cache);
  const T* vc = static_cast<const T*>(kv.v_cache);
  auto row_offset = [&](int r) { return (static_cast<int64_t>(tile.first + r / G) * nh + kvh * G + r % G) * D; };
  auto first_key = [&](int pos) { return window > 0 ? max(0, pos - window + 1) : 0; };

  // Keys any row of the tile sees: [lo, hi].
  int lo = INT_MAX, hi = -1;
  for (int t = lane; t < tile.count; t += 32) {
    const int pos = positions[tile.first + t];
    lo = min(lo, first_key(pos));
    hi = max(hi, pos);
  }
  lo = warp_min_int(lo);
  hi = warp_max_int(hi);
  // This thread's rows (accumulator rows lane / 4 and lane / 4 + 8 of the warp's 16) and what they see.
  int rpos[2], rlo[2];
  for (int i = 0; i < 2; ++i) {
    const int r = warp * 16 + (lane >> 2) + i * 8;
    rpos[i] = r < rows ? positions[tile.first + r / G] : -1;  // padding rows see nothing
    rlo[i] = rpos[i] >= 0 ? first_key(rpos[i]) : INT_MAX;
  }
  const int warp_hi = warp_max_int(max(rpos[0], rpos[1])), warp_lo = warp_min_int(min(rlo[0], rlo[1]));

  for (int c = threadIdx.x; c < BM * PR; c += kThreads) {  // Q, staged in V's buffer
    const int r = c / PR, col = (c % PR) * 8;
    cp_async16(&sv[r][col], r < rows ? q + row_offset(r) + col : q, r < rows);
  }
  load_keys<T, D>(sk, kc, bs, nkv, table, kvh, lo, hi, key_ok);
  cp_async_commit();
  ptx::cp_async_wait<0>();
  __syncthreads();
  unsigned qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(qf[kk], &sv[warp * 16 + (lane & 15)][kk * 16 + (lane >> 4) * 8]);
  __syncthreads();  // Q is in registers: V's buffer is free

  const float scale_log2 = kLog2e / kv.scale;
  float o[D / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int k0 = lo; k0 <= hi; k0 += BN) {
    load_keys<T, D>(sv, vc, bs, nkv, table, kvh, k0, hi, nullptr);  // V(k0) arrives during S = Q K^T
    cp_async_commit();
    const bool active = k0 <= warp_hi && k0 + BN > warp_lo;  // warp-uniform: some row sees a key here
    float s[BN / 8][4] = {};
    if (active) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
        for (int j = 0; j < BN / 8; j += 2) {  // keys j*8 .. j*8 + 15: lanes 0-7 / 8-15 / 16-23 / 24-31
          unsigned b[4];
          ldmatrix_x4(b, &sk[j * 8 + (lane & 7) + ((lane >> 4) << 3)][kk * 16 + ((lane >> 3) & 1) * 8]);
          Mma<T>::run(s[j], qf[kk], b[0], b[1]);
          Mma<T>::run(s[j + 1], qf[kk], b[2], b[3]);
        }
      // Accumulator layout: c0, c1 at (row lane / 4, key 2 * (lane % 4) + {0, 1}); c2, c3 eight rows below.
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int jj = j * 8 + (lane & 3) * 2 + (e & 1), key = k0 + jj, i = e >> 1;
          s[j][e] = key_ok[jj] && key >= rlo[i] && key <= rpos[i] ? s[j][e] * scale_log2 : -INFINITY;
        }
#pragma unroll
      for (int i = 0; i < 2; ++i) {  // online softmax of row i; the 4 lanes of a quad share a row
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * i], s[j][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[i], mx), base = m_new == -INFINITY ? 0.0f : m_new;
        const float f = exp2f(m[i] - base);
        m[i] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          s[j][2 * i] = exp2f(s[j][2 * i] - base);
          s[j][2 * i + 1] = exp2f(s[j][2 * i + 1] - base);
          sum += s[j][2 * i] + s[j][2 * i + 1];
        }
        l[i] = l[i] * f + sum;
#pragma unroll
        for (int dn = 0; dn < D / 8; ++dn) {
          o[dn][2 * i] *= f;
          o[dn][2 * i + 1] *= f;
        }
      }
    }
    ptx::cp_async_wait<0>();
    __syncthreads();  // V(k0) is in; every warp is done with K(k0)
    if (k0 + BN <= hi) {
      load_keys<T, D>(sk, kc, bs, nkv, table, kvh, k0 + BN, hi, key_ok);  // K(k0 + BN) arrives during O += P V
      cp_async_commit();
    }
    if (active) {
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        // The S accumulators of keys kk*16 .. +15 are this thread's A fragment of P.
        const unsigned a[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                               pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                               pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dn = 0; dn < D / 8; dn += 2) {  // keys +0-7 / +8-15 at d, then at d + 8
          unsigned b[4];
          ldmatrix_x4_trans(b, &sv[kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][dn * 8 + (lane >> 4) * 8]);
          Mma<T>::run(o[dn], a, b[0], b[1]);
          Mma<T>::run(o[dn + 1], a, b[2], b[3]);
        }
      }
    }
    ptx::cp_async_wait<0>();
    __syncthreads();  // K(k0 + BN) is in; every warp is done with V(k0)
  }

  // Normalise, stage the warp's 16 rows in K's buffer (no warp reads it any more), store 16 bytes a lane.
  float inv[2];
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    inv[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
  }
  T(*so)[LDS] = sk + warp * 16;
#pragma unroll
  for (int dn = 0; dn < D / 8; ++dn) {
    const int c = dn * 8 + (lane & 3) * 2;
    *reinterpret_cast<unsigned*>(&so[lane >> 2][c]) = pack2<T>(o[dn][0] * inv[0], o[dn][1] * inv[0]);
    *reinterpret_cast<unsigned*>(&so[(lane >> 2) + 8][c]) = pack2<T>(o[dn][2] * inv[1], o[dn][3] * inv[1]);
  }
  __syncwarp();
  for (int c = lane; c < 16 * PR; c += 32) {
    const int r = c / PR, col = (c % PR) * 8, row = warp * 16 + r;
    if (row < rows) *reinterpret_cast<uint4*>(out + row_offset(row) + col) = *reinterpret_cast<const uint4*>(&so[r][col]);
  }
}

template <typename T, int D>
void flash_prefill_cuda(const PagedKv& kv, const T* q, const int32_t* positions, const PrefillTile* tiles, int n,
                        T* out, cudaStream_t stream) {
  const size_t smem = 2 * sizeof(T) * BN * (D + 8) + sizeof(int) * BN;
  launch(flash_prefill_kernel<T, D>, dim3(n, kv.num_kv_heads), kThreads, smem, stream, kv, q, positions, tiles, out);
}

}  // namespace

void flash_prefill_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions,
                             const PrefillTile* tiles, int n, void* out, cudaStream_t stream) {
  if (n == 0) return;
  if (kv.num_kv_heads <= 0 || kv.num_heads % kv.num_kv_heads != 0 ||
      !flash_prefill_supported(kv.head_dim, kv.num_heads / kv.num_kv_heads))
    throw Error("flash prefill: head_dim " + std::to_string(kv.head_dim) + " with " + std::to_string(kv.num_heads) +
                " heads over " + std::to_string(kv.num_kv_heads) + " KV heads is not supported");
  GYRE_DISPATCH_HALF(dt, {
    const auto* qt = static_cast<const scalar_t*>(q);
    auto* ot = static_cast<scalar_t*>(out);
    if (kv.head_dim == 64) flash_prefill_cuda<scalar_t, 64>(kv, qt, positions, tiles, n, ot, stream);
    else flash_prefill_cuda<scalar_t, 128>(kv, qt, positions, tiles, n, ot, stream);
  });
}

}  // namespace gyre
