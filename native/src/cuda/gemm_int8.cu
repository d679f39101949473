// The int8-weight GEMM on tensor cores (prefill, and batches past the GEMV's M), and the
// dispatcher gemm_int8. C[m, n] = scale[n] * sum_k A[m, k] * q[n, k].
//
// gemm_mma's structure with an int8 W tile, K in steps of BK = 64 through a STAGES-deep cp.async ring:
//   shared A ring [STAGES][BM][64 + 8] (f16/bf16)   shared W ring [STAGES][64][64] (int8)
//   shared W tile [64][64 + 8] (f16/bf16): each k-tile's int8 W is converted into it (exact:
//   |q| <= 127), then fragments by ldmatrix and mma.sync m16n8k16 as in gemm_mma.
//   4 warps, BN = 64; BM = 16: warps 1 x 4 (warp tile 16 x 16), 32: 2 x 2 (16 x 32), 64: 2 x 2 (32 x 32).
// The scale is applied once per output in the epilogue: C = (sum_k a * q, float32) * scale[n],
// so the tensor cores see the exact q and no rounding of q * scale to f16/bf16 happens.
// Blocks are rasterized in groups of kGroupM M-tiles so that concurrent blocks share W tiles in L2.
#include "cuda/common.cuh"
#include "cuda/gemm.cuh"
#include "cuda/int8_convert.cuh"
#include "cuda/mma_ptx.cuh"

namespace gyre {
namespace {

constexpr int BN = 64, BK = 64, LDS = BK + 8, kThreads = 128, kGroupM = 8;

using ptx::cp_async16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::Mma;

template <typename T, int BM, int STAGES>
struct Smem {
  T a[STAGES][BM][LDS];
  int8_t q[STAGES][BN][BK];
  T w[BN][LDS];
};

template <typename T, int BM, int STAGES>
__global__ void __launch_bounds__(kThreads) gemm_int8_mma_kernel(const T* __restrict__ A,  // [M, K], row stride lda
                                                                 int lda,
                                                                 const int8_t* __restrict__ W,    // [N, K]
                                                                 const float* __restrict__ scale, // [N]
                                                                 float* __restrict__ C,  // [M, N], row stride ldc
                                                                 int ldc, int M, int N, int K) {
  constexpr int WM = BM >= 32 ? 2 : 1, WN = 4 / WM, TM = BM / WM, TN = BN / WN, MI = TM / 16, NJ = TN / 8;
  static_assert(TM % 16 == 0 && NJ % 2 == 0, "warp tile");
  GYRE_DYNAMIC_SMEM(unsigned char, smem_raw);
  Smem<T, BM, STAGES>& sm = *reinterpret_cast<Smem<T, BM, STAGES>*>(smem_raw);

  // Grouped rasterization: kGroupM M-tiles side by side sweep the N-tiles together.
  const int mtiles = (M + BM - 1) / BM, ntiles = (N + BN - 1) / BN;
  const int per_group = kGroupM * ntiles, id = blockIdx.x, first_m = id / per_group * kGroupM;
  const int group_m = min(mtiles - first_m, kGroupM);
  const int m0 = (first_m + id % per_group % group_m) * BM, n0 = id % per_group / group_m * BN;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp / WN * TM, wn = warp % WN * TN;
  float acc[MI][NJ][4] = {};

  auto load_stage = [&](int s, int kt) {
    const int k0 = kt * BK;
    for (int c = threadIdx.x; c < BM * (BK / 8); c += kThreads) {  // A: 8 halves per copy
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const bool valid = m0 + r < M && k0 + kc < K;
      cp_async16(&sm.a[s][r][kc], valid ? A + static_cast<int64_t>(m0 + r) * lda + k0 + kc : A, valid);
    }
    for (int c = threadIdx.x; c < BN * (BK / 16); c += kThreads) {  // W: 16 int8 per copy
      const int r = c / (BK / 16), kc = (c % (BK / 16)) * 16;
      const bool valid = n0 + r < N && k0 + kc < K;
      cp_async16(&sm.q[s][r][kc], valid ? W + static_cast<int64_t>(n0 + r) * K + k0 + kc : W, valid);
    }
  };

  const int ktiles = (K + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();  // empty groups too: the wait count below stays uniform
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    const int cur = kt % STAGES;
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile kt is in shared memory; everyone is done with tile kt - 1 and sm.w
    if (kt + STAGES - 1 < ktiles) load_stage((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
    cp_async_commit();
    for (int c = threadIdx.x; c < BN * (BK / 16); c += kThreads) {  // int8 -> T, 16 per step
      const int r = c / (BK / 16), kc = (c % (BK / 16)) * 16;
      const uint4 q = *reinterpret_cast<const uint4*>(&sm.q[cur][r][kc]);
      const uint2 p0 = int8x4_to<T>(q.x), p1 = int8x4_to<T>(q.y), p2 = int8x4_to<T>(q.z), p3 = int8x4_to<T>(q.w);
      *reinterpret_cast<uint4*>(&sm.w[r][kc]) = make_uint4(p0.x, p0.y, p1.x, p1.y);
      *reinterpret_cast<uint4*>(&sm.w[r][kc + 8]) = make_uint4(p2.x, p2.y, p3.x, p3.y);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned a[MI][4], b[NJ][2];
#pragma unroll
      for (int i = 0; i < MI; ++i)  // lanes 0-15: rows 0-15 at k; lanes 16-31: rows 0-15 at k + 8
        ldmatrix_x4(a[i], &sm.a[cur][wm + i * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
      for (int j = 0; j < NJ; j += 2) {  // two n8 tiles: lanes 0-7 / 8-15 / 16-23 / 24-31
        unsigned r[4];
        ldmatrix_x4(r, &sm.w[wn + j * 8 + (lane & 7) + ((lane >> 4) << 3)][kk + ((lane >> 3) & 1) * 8]);
        b[j][0] = r[0]; b[j][1] = r[1]; b[j + 1][0] = r[2]; b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j) Mma<T>::run(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  cp_async_wait<0>();  // no copy outlives the block (the trailing groups are empty)
  // Accumulator layout: c0, c1 at (lane / 4, 2 * (lane % 4) + {0, 1}); c2, c3 eight rows below.
  const int gr = lane >> 2, gc = (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < NJ; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = n0 + wn + j * 8 + gc + (e & 1);
      if (c >= N) continue;
      const float s = scale[c];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = m0 + wm + i * 16 + gr + (e >> 1) * 8;
        if (r < M) C[static_cast<int64_t>(r) * ldc + c] = acc[i][j][e] * s;
      }
    }
}

template <typename T, int BM, int STAGES>
void gemm_int8_mma_launch(const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
                          int K, cudaStream_t stream) {
  constexpr size_t bytes = sizeof(Smem<T, BM, STAGES>);
  static_assert(bytes <= 48 * 1024, "<= 48 KiB: no opt-in needed, and two blocks fit an sm_86 SM");
  const int64_t blocks = int64_t{(M + BM - 1) / BM} * ((N + BN - 1) / BN);
  if (blocks > INT32_MAX) throw Error("gemm_int8: M x N too large");
  launch(gemm_int8_mma_kernel<T, BM, STAGES>, static_cast<unsigned>(blocks), kThreads, bytes, stream, 
      static_cast<const T*>(A), lda, W, scale, C, ldc, M, N, K);
}

// BM by M: the smallest tile that holds the batch while M is small (memory-bound: the deeper
// ring keeps more weight bytes in flight), 64 x 64 beyond.
template <typename T>
void gemm_int8_mma_cuda(const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
                        int K, cudaStream_t stream) {
  if (M <= 16) gemm_int8_mma_launch<T, 16, 6>(A, lda, W, scale, C, ldc, M, N, K, stream);
  else if (M <= 32) gemm_int8_mma_launch<T, 32, 4>(A, lda, W, scale, C, ldc, M, N, K, stream);
  else gemm_int8_mma_launch<T, 64, 3>(A, lda, W, scale, C, ldc, M, N, K, stream);
}

}  // namespace

void gemm_int8_mma(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M,
                   int N, int K, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  check_gemm_int8_args("gemm_int8", A, lda, W, scale, K);
  GYRE_DISPATCH_HALF(dt, gemm_int8_mma_cuda<scalar_t>(A, lda, W, scale, C, ldc, M, N, K, stream));
}

void gemm_int8(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
               int K, cudaStream_t stream) {
  if (M <= kGemvInt8MaxM) gemv_int8(dt, A, lda, W, scale, C, ldc, M, N, K, stream);
  else gemm_int8_mma(dt, A, lda, W, scale, C, ldc, M, N, K, stream);
}

}  // namespace gyre
