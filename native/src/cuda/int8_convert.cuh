// Exact int8 -> float / f16 / bf16 conversion with byte permutes instead of I2F (a quarter-rate
// instruction): the biased byte u = q + 128 placed in the low mantissa bits of 2^23 (float) or
// 1024 (f16) is exactly 2^23 + u (1024 + u); subtracting 2^23 + 128 (1152) gives q exactly.
// bf16 goes through float (8 mantissa bits cannot hold 128 + u); |q| <= 128 is exact in all three.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/common.cuh"

namespace gyre {

// The four int8 of `w` (byte 0 first) as floats.
__device__ __forceinline__ void int8x4_to_float(uint32_t w, float (&f)[4]) {
  const uint32_t u = w ^ 0x80808080u;
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7440u | i)) - 8388736.0f;
}

// The four int8 of `w` as four T packed in two 32-bit words (byte 0 in the low half of .x).
template <typename T> __device__ __forceinline__ uint2 int8x4_to(uint32_t w);
template <> __device__ __forceinline__ uint2 int8x4_to<__half>(uint32_t w) {
  const uint32_t u = w ^ 0x80808080u;
  uint32_t lo = __byte_perm(u, 0x64646464u, 0x4140u), hi = __byte_perm(u, 0x64646464u, 0x4342u);
  const __half2 bias = __halves2half2(__ushort_as_half(0x6480), __ushort_as_half(0x6480));  // 1152
  __half2 a = __hsub2(*reinterpret_cast<__half2*>(&lo), bias), b = __hsub2(*reinterpret_cast<__half2*>(&hi), bias);
  return make_uint2(*reinterpret_cast<uint32_t*>(&a), *reinterpret_cast<uint32_t*>(&b));
}
template <> __device__ __forceinline__ uint2 int8x4_to<__nv_bfloat16>(uint32_t w) {
  float f[4];
  int8x4_to_float(w, f);
  __nv_bfloat162 a = __floats2bfloat162_rn(f[0], f[1]), b = __floats2bfloat162_rn(f[2], f[3]);
  return make_uint2(*reinterpret_cast<uint32_t*>(&a), *reinterpret_cast<uint32_t*>(&b));
}

// Two packed T (low half first) as floats.
template <typename T> __device__ __forceinline__ float2 pair_to_float2(uint32_t v);
template <> __device__ __forceinline__ float2 pair_to_float2<__half>(uint32_t v) {
  return __half22float2(*reinterpret_cast<__half2*>(&v));
}
template <> __device__ __forceinline__ float2 pair_to_float2<__nv_bfloat16>(uint32_t v) {
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}

// The int8 GEMMs' shared argument checks (host).
inline void check_gemm_int8_args(const char* who, const void* A, int lda, const void* W, const float* scale, int K) {
  if (K % 16 != 0 || lda % 8 != 0)
    throw Error(std::string(who) + ": K must be a multiple of 16 and lda of 8, got K " + std::to_string(K) + ", lda " +
                std::to_string(lda));
  if (reinterpret_cast<uintptr_t>(A) % 16 || reinterpret_cast<uintptr_t>(W) % 16 || scale == nullptr)
    throw Error(std::string(who) + ": A and W must be 16-byte aligned and scale given");
}

}  // namespace gyre
