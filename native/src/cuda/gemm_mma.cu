// The in-house GEMM: 64x64 output tiles per block of 4 warps (2x2, 32x32 each), K in steps
// of 32 through a 2-stage cp.async pipeline, fragments by ldmatrix, mma.sync m16n8k16.
//
//   shared A tile [64][32 + 8]   shared W tile [64][32 + 8]   (+8 halves: conflict-free ldmatrix)
//   warp (wm, wn): rows wm*32 .. +32, cols wn*32 .. +32 = 2 x 4 mma tiles of 16x8
//
// Rows past M or N and k past K are zero-filled by cp.async (src-size 0), so any M, N work.
//
// Decode (M <= kSmallM) takes a second kernel built for streaming W: BM = 16, BN = 32 (so a
// 4096-wide layer is 128 blocks, enough for an A10G's 80 SMs without split-K), BK = 64 through
// a 4-deep cp.async ring; warp w owns the n8 tile w. Both kernels add the k16 mma products of
// an output in ascending k, one chain per output, so a row's result is bit-identical whichever
// kernel runs and whatever M is (batch invariance; split-K would break it).
#include "cuda/common.cuh"
#include "cuda/gemm.cuh"
#include "cuda/mma_ptx.cuh"

namespace gyre {
namespace {

constexpr int BM = 64, BN = 64, BK = 32, LDS = BK + 8, kThreads = 128;

using ptx::cp_async16;
using ptx::cp_async_commit;
using ptx::ldmatrix_x4;
using ptx::Mma;
__device__ __forceinline__ void cp_async_wait_all() { ptx::cp_async_wait<0>(); }

// Copies one BM x BK (or BN x BK) tile, 16 bytes (8 elements) per cp.async.
template <typename T>
__device__ __forceinline__ void load_tile(T (*dst)[LDS], const T* __restrict__ src, int ld, int row0, int rows,
                                          int k0, int K) {
  for (int c = threadIdx.x; c < BM * (BK / 8); c += kThreads) {
    const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
    const bool valid = row0 + r < rows && k0 + kc < K;
    const T* g = valid ? src + static_cast<int64_t>(row0 + r) * ld + k0 + kc : src;
    cp_async16(&dst[r][kc], g, valid);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gemm_mma_kernel(const T* __restrict__ A,  // [M, K], row stride lda
                                                            int lda,
                                                            const T* __restrict__ W,  // [N, K]
                                                            float* __restrict__ C,    // [M, N], row stride ldc
                                                            int ldc, int M, int N, int K) {
  __shared__ __align__(16) T sa[2][BM][LDS];
  __shared__ __align__(16) T sw[2][BN][LDS];
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  float acc[2][4][4] = {};

  const int ktiles = (K + BK - 1) / BK;
  load_tile(sa[0], A, lda, m0, M, 0, K);
  load_tile(sw[0], W, K, n0, N, 0, K);
  cp_async_commit();
  for (int kt = 0; kt < ktiles; ++kt) {
    const int cur = kt & 1;
    cp_async_wait_all();
    __syncthreads();  // tile kt is in shared memory; everyone is done with tile kt - 1
    if (kt + 1 < ktiles) {
      load_tile(sa[cur ^ 1], A, lda, m0, M, (kt + 1) * BK, K);
      load_tile(sw[cur ^ 1], W, K, n0, N, (kt + 1) * BK, K);
    }
    cp_async_commit();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)  // lanes 0-15: rows 0-15 at k; lanes 16-31: rows 0-15 at k + 8
        ldmatrix_x4(a[i], &sa[cur][wm + i * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
      for (int j = 0; j < 4; j += 2) {  // two n8 tiles: lanes 0-7 / 8-15 / 16-23 / 24-31
        unsigned r[4];
        ldmatrix_x4(r, &sw[cur][wn + j * 8 + (lane & 7) + ((lane >> 4) << 3)][kk + ((lane >> 3) & 1) * 8]);
        b[j][0] = r[0]; b[j][1] = r[1]; b[j + 1][0] = r[2]; b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) Mma<T>::run(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  // Accumulator layout: c0, c1 at (lane / 4, 2 * (lane % 4) + {0, 1}); c2, c3 eight rows below.
  const int gr = lane >> 2, gc = (lane & 3) * 2;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = m0 + wm + i * 16 + gr + (e >> 1) * 8, c = n0 + wn + j * 8 + gc + (e & 1);
        if (r < M && c < N) C[static_cast<int64_t>(r) * ldc + c] = acc[i][j][e];
      }
}

constexpr int kSmallM = 16, SBN = 32, SBK = 64, SLDS = SBK + 8, kStages = 4;

template <typename T>
__global__ void __launch_bounds__(kThreads) gemm_mma_small_kernel(const T* __restrict__ A,  // [M, K], row stride lda
                                                                  int lda,
                                                                  const T* __restrict__ W,  // [N, K]
                                                                  float* __restrict__ C,    // [M, N], row stride ldc
                                                                  int ldc, int M, int N, int K) {
  __shared__ __align__(16) T sa[kStages][kSmallM][SLDS];
  __shared__ __align__(16) T sw[kStages][SBN][SLDS];
  const int n0 = blockIdx.x * SBN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int ktiles = (K + SBK - 1) / SBK;
  auto load = [&](int stage, int kt) {
    const int k0 = kt * SBK;
    for (int c = threadIdx.x; c < (kSmallM + SBN) * (SBK / 8); c += kThreads) {
      const int r = c / (SBK / 8), kc = (c % (SBK / 8)) * 8;
      if (r < kSmallM) {
        const bool valid = r < M && k0 + kc < K;
        cp_async16(&sa[stage][r][kc], valid ? A + static_cast<int64_t>(r) * lda + k0 + kc : A, valid);
      } else {
        const int n = n0 + r - kSmallM;
        const bool valid = n < N && k0 + kc < K;
        cp_async16(&sw[stage][r - kSmallM][kc], valid ? W + static_cast<int64_t>(n) * K + k0 + kc : W, valid);
      }
    }
  };
  float acc[4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    ptx::cp_async_wait<kStages - 2>();
    __syncthreads();  // tile kt is in shared memory; everyone is done with tile kt - 1's stage
    if (kt + kStages - 1 < ktiles) load((kt + kStages - 1) % kStages, kt + kStages - 1);
    cp_async_commit();
    const int st = kt % kStages;
#pragma unroll
    for (int kk = 0; kk < SBK; kk += 32) {
      unsigned a0[4], a1[4], b[4];
      ldmatrix_x4(a0, &sa[st][lane & 15][kk + (lane >> 4) * 8]);
      ldmatrix_x4(a1, &sa[st][lane & 15][kk + 16 + (lane >> 4) * 8]);
      // lanes 0-7 / 8-15 / 16-23 / 24-31: the warp's 8 rows of W at k, k + 8, k + 16, k + 24
      ldmatrix_x4(b, &sw[st][warp * 8 + (lane & 7)][kk + (lane >> 3) * 8]);
      Mma<T>::run(acc, a0, b[0], b[1]);
      Mma<T>::run(acc, a1, b[2], b[3]);
    }
  }
  const int r = lane >> 2, c = n0 + warp * 8 + (lane & 3) * 2;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const int row = r + (e >> 1) * 8, col = c + (e & 1);
    if (row < M && col < N) C[static_cast<int64_t>(row) * ldc + col] = acc[e];
  }
}

template <typename T>
void gemm_mma_cuda(const T* A, int lda, const T* W, float* C, int ldc, int M, int N, int K, cudaStream_t stream) {
  if (M <= kSmallM) {
    launch(gemm_mma_small_kernel<T>, dim3((N + SBN - 1) / SBN), kThreads, 0, stream, A, lda, W, C, ldc, M, N, K);
    return;
  }
  dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
  launch(gemm_mma_kernel<T>, grid, kThreads, 0, stream, A, lda, W, C, ldc, M, N, K);
}

}  // namespace

void gemm_mma(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K,
              cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  if (K % 8 != 0 || lda % 8 != 0) throw Error("gemm: K and lda must be multiples of 8, got K " + std::to_string(K));
  if (M > 65535 * BM) throw Error("gemm: M too large");
  GYRE_DISPATCH_HALF(dt, gemm_mma_cuda(static_cast<const scalar_t*>(A), lda, static_cast<const scalar_t*>(W), C, ldc,
                                       M, N, K, stream));
}

void gemm(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K, cudaStream_t stream) {
  if (gemm_has_cublaslt()) gemm_cublaslt(dt, A, lda, W, C, ldc, M, N, K, stream);
  else gemm_mma(dt, A, lda, W, C, ldc, M, N, K, stream);
}

}  // namespace gyre
