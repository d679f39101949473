// Device-side helpers shared by every kernel file: the activation types and their float
// conversions, warp reductions, and the dtype dispatch used by the entry points.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/cuda_util.h"

// Dynamic shared memory, 16-byte aligned: `extern __shared__` under nvcc, the block's arena
// under emulation (GYRE_CUDA_EMULATION: the same sources run on the CPU, native/emu/).
#ifdef GYRE_CUDA_EMULATION
#define GYRE_DYNAMIC_SMEM(type, name) type* name = static_cast<type*>(::simt::dynamic_smem())
#else
#define GYRE_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) type name[]
#endif

namespace gyre {

// Every kernel launch goes through here, so one line compiles under nvcc and under emulation;
// a bad configuration throws here, not at the next synchronisation.
template <typename... P, typename... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A... args) {
#ifdef GYRE_CUDA_EMULATION
  ::simt::launch(kernel, grid, block, smem, stream, static_cast<P>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(static_cast<P>(args)...);
#endif
  CUDA_CHECK_LAUNCH();
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_reduce_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_reduce_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Sum over a block of up to 1024 threads; every thread gets the total. Fixed order, so the
// result does not depend on timing. `scratch`: 32 floats of shared memory.
__device__ __forceinline__ float block_reduce_sum(float x, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  x = warp_reduce_sum(x);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < nwarps ? scratch[lane] : 0.0f;
  return warp_reduce_sum(x);
}

}  // namespace gyre

// Runs `...` with `scalar_t` = the device type of activation dtype `dt` (f16 or bf16).
#define GYRE_DISPATCH_HALF(dt, ...)                                               \
  do {                                                                            \
    if ((dt) == ::gyre::DType::kF16) { using scalar_t = __half; __VA_ARGS__; }    \
    else if ((dt) == ::gyre::DType::kBF16) { using scalar_t = __nv_bfloat16; __VA_ARGS__; } \
    else throw ::gyre::Error("CUDA kernels: activation dtype must be f16 or bf16");    \
  } while (0)

// The supported head sizes, in one place: runs `...` with `kHeadDim` a compile-time constant.
#define GYRE_DISPATCH_HEAD_DIM(d, ...)                                                    \
  do {                                                                                    \
    switch (d) {                                                                          \
      case 8: { constexpr int kHeadDim = 8; __VA_ARGS__; } break;                         \
      case 16: { constexpr int kHeadDim = 16; __VA_ARGS__; } break;                       \
      case 32: { constexpr int kHeadDim = 32; __VA_ARGS__; } break;                       \
      case 64: { constexpr int kHeadDim = 64; __VA_ARGS__; } break;                       \
      case 128: { constexpr int kHeadDim = 128; __VA_ARGS__; } break;                     \
      default: throw ::gyre::Error("CUDA attention: head_dim " + std::to_string(d) +      \
                                   " is not supported (supported: 8, 16, 32, 64, 128)");  \
    }                                                                                     \
  } while (0)
