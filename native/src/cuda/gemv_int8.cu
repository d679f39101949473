// The int8-weight GEMV for decode (M <= kGemvInt8MaxM): C[m, n] = scale[n] * sum_k A[m, k] * q[n, k].
// Memory-bound: every weight byte is read once, so the kernel is built to keep loads in flight.
//
//   block = 4 warps; warp w owns kRows = 4 consecutive rows of W (a block: 16 rows)
//   lane l reads 16-byte chunks l, l + 32, l + 64, ... of each of its rows: per step a warp
//   reads 512 contiguous bytes of each row, and kUnroll = 2 steps are issued together, so a
//   lane has 8 independent 16-byte weight loads in flight (4 KiB per warp)
//   W streams past L1 (ld.global.nc.L1::no_allocate); A [M, K] is read through L1, where
//   the warps of an SM share it (it is small: M x K x 2 bytes)
//   per lane: float32 sums in k order; then a warp xor-shuffle sum (fixed order), times scale[n].
// A row's result does not depend on M or on the other rows.
#include "cuda/common.cuh"
#include "cuda/gemm.cuh"
#include "cuda/int8_convert.cuh"
#include "cuda/mma_ptx.cuh"

namespace gyre {
namespace {

constexpr int kWarps = 4, kRows = 4, kUnroll = 2, kThreads = kWarps * 32;
constexpr int kRowsPerBlock = kWarps * kRows;

__device__ __forceinline__ uint4 load_streaming(const int8_t* p) { return ptx::ld_streaming16(p); }

template <typename T, int M>
__global__ void __launch_bounds__(kThreads) gemv_int8_kernel(const T* __restrict__ A,  // [M, K], row stride lda
                                                             int lda,
                                                             const int8_t* __restrict__ W,    // [N, K]
                                                             const float* __restrict__ scale, // [N]
                                                             float* __restrict__ C,           // [M, N], row stride ldc
                                                             int ldc, int N, int K) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = (blockIdx.x * kWarps + warp) * kRows;
  if (n0 >= N) return;  // whole warps only; no block-wide synchronisation below
  const int chunks = K / 16;
  const int8_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = W + static_cast<int64_t>(min(n0 + r, N - 1)) * K;  // past N: re-read row N-1
  float acc[M][kRows];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = 0.0f;

  for (int c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    uint4 w[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + 32 * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) w[u][r] = c < chunks ? load_streaming(rows[r] + c * 16) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + 32 * u;
      if (c < chunks) {
        float wf[kRows][16];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const uint32_t words[4] = {w[u][r].x, w[u][r].y, w[u][r].z, w[u][r].w};
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            float f[4];
            int8x4_to_float(words[i], f);
#pragma unroll
            for (int j = 0; j < 4; ++j) wf[r][4 * i + j] = f[j];
          }
        }
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const uint4* ap = reinterpret_cast<const uint4*>(A + static_cast<int64_t>(m) * lda + c * 16);
          const uint4 a0 = __ldg(ap), a1 = __ldg(ap + 1);
          const uint32_t words[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
          float af[16];
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const float2 p = pair_to_float2<T>(words[i]);
            af[2 * i] = p.x;
            af[2 * i + 1] = p.y;
          }
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int i = 0; i < 16; ++i) acc[m][r] = fmaf(af[i], wf[r][i], acc[m][r]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = warp_reduce_sum(acc[m][r]);
  // Every lane holds every sum; lane m * kRows + r (< 32 as M <= 8) writes (m, r).
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (lane == m * kRows + r && n0 + r < N)
        C[static_cast<int64_t>(m) * ldc + n0 + r] = acc[m][r] * scale[n0 + r];
}

template <typename T, int M>
void gemv_int8_launch(const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int N, int K,
                      cudaStream_t stream) {
  const int blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  launch(gemv_int8_kernel<T, M>, blocks, kThreads, 0, stream, static_cast<const T*>(A), lda, W, scale, C, ldc, N, K);
}

template <typename T>
void gemv_int8_cuda(const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N, int K,
                    cudaStream_t stream) {
  static_assert(kGemvInt8MaxM * kRows <= 32, "one lane per output of a warp");
  switch (M) {
    case 1: gemv_int8_launch<T, 1>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 2: gemv_int8_launch<T, 2>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 3: gemv_int8_launch<T, 3>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 4: gemv_int8_launch<T, 4>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 5: gemv_int8_launch<T, 5>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 6: gemv_int8_launch<T, 6>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 7: gemv_int8_launch<T, 7>(A, lda, W, scale, C, ldc, N, K, stream); break;
    case 8: gemv_int8_launch<T, 8>(A, lda, W, scale, C, ldc, N, K, stream); break;
    default: throw Error("gemv_int8: M must be 1.." + std::to_string(kGemvInt8MaxM) + ", got " + std::to_string(M));
  }
}

}  // namespace

void gemv_int8(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
               int K, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  check_gemm_int8_args("gemv_int8", A, lda, W, scale, K);
  GYRE_DISPATCH_HALF(dt, gemv_int8_cuda<scalar_t>(A, lda, W, scale, C, ldc, M, N, K, stream));
}

}  // namespace gyre
