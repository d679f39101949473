// AVX2/FMA/F16C helpers for host code: the CPU kernels, the int8 quantizer and the CUDA upload's
// dtype conversions. Every horizontal sum uses the same fixed order, so a value computed in any
// kernel, tile or batch is bit-identical.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace gyre {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);                       // 4
  __m128 sh = _mm_movehl_ps(lo, lo);
  lo = _mm_add_ps(lo, sh);                       // 2
  sh = _mm_shuffle_ps(lo, lo, 0x55);
  lo = _mm_add_ss(lo, sh);                       // 1
  return _mm_cvtss_f32(lo);
}

// Loads 8 weights of any storage type as float32.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p, bool bf16) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace gyre
