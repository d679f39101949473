#include <algorithm>

#include "cuda/common.cuh"
#include "synthetic/random_fill.cuh"

namespace gyre {
namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float random_value(RandomFill kind, uint64_t seed, int64_t i) {
  const uint64_t h = splitmix64(seed * 0xD1B54A32D192ED03ull + static_cast<uint64_t>(i));
  const float u1 = (static_cast<float>(h >> 40) + 1.0f) * 0x1p-24f;  // (0, 1]
  const float u2 = static_cast<float>(h & 0xFFFFFFu) * 0x1p-24f;     // [0, 1)
  switch (kind) {
    case RandomFill::kNormal: return 0.02f * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    case RandomFill::kOnes: return 1.0f;
    case RandomFill::kScale:  // 23 random bits: 0.5 + u is exact, so < 1.5 (24 bits round 1.5 - 2^-24 up to 1.5)
      return (0.5f + static_cast<float>(h & 0x7FFFFFu) * 0x1p-23f) * (3.0f * 0.02f / 127.0f);
    case RandomFill::kInt8: return static_cast<float>(static_cast<int>(h % 255u) - 127);
  }
  return 0.0f;
}

template <typename T>
__global__ void random_fill_kernel(T* __restrict__ dst,  // [n]
                                   int64_t n, RandomFill kind, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = from_float<T>(random_value(kind, seed, i));
}
__global__ void random_fill_int8_kernel(int8_t* __restrict__ dst,  // [n]
                                        int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = static_cast<int8_t>(random_value(RandomFill::kInt8, seed, i));
}

}  // namespace

void random_fill(void* dst, DType dt, int64_t n, RandomFill kind, uint64_t seed, cudaStream_t stream) {
  if (n <= 0) return;
  if ((kind == RandomFill::kInt8) != (dt == DType::kI8))
    throw Error(std::string("random_fill: int8 values need an I8 tensor and I8 tensors int8 values, got ") +
                dtype_name(dt));
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
  switch (dt) {
    case DType::kI8: launch(random_fill_int8_kernel, blocks, kThreads, 0, stream, static_cast<int8_t*>(dst), n, seed); break;
    case DType::kF32: launch(random_fill_kernel<float>, blocks, kThreads, 0, stream, static_cast<float*>(dst), n, kind, seed); break;
    case DType::kF16: launch(random_fill_kernel<__half>, blocks, kThreads, 0, stream, static_cast<__half*>(dst), n, kind, seed); break;
    case DType::kBF16:
      launch(random_fill_kernel<__nv_bfloat16>, blocks, kThreads, 0, stream, static_cast<__nv_bfloat16*>(dst), n, kind, seed);
      break;
    default: throw Error(std::string("random_fill: unsupported dtype ") + dtype_name(dt));
  }
}

}  // namespace gyre
