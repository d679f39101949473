// __half and __half2 for the emulation build: IEEE binary16 through the compiler's _Float16
// (round to nearest even), with the conversions and the few operations the kernels use.
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"

struct __half {
  uint16_t x;
  __half() = default;
  __half(float f) { _Float16 h = static_cast<_Float16>(f); std::memcpy(&x, &h, 2); }
  operator float() const { _Float16 h; std::memcpy(&h, &x, 2); return static_cast<float>(h); }
};
struct __half2 {
  __half x, y;
};
typedef __half half;
typedef __half2 half2;

inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline __half2 __halves2half2(__half a, __half b) { return {a, b}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return {__half(a), __half(a)}; }
inline float2 __half22float2(__half2 h) { return {static_cast<float>(h.x), static_cast<float>(h.y)}; }
inline float __low2float(__half2 h) { return static_cast<float>(h.x); }
inline float __high2float(__half2 h) { return static_cast<float>(h.y); }
// Half arithmetic rounds the exact result once: double holds the exact sum/difference/product.
inline __half __hround(double v) { return __half(static_cast<float>(static_cast<_Float16>(v))); }
inline __half __hadd(__half a, __half b) { return __hround(double(float(a)) + double(float(b))); }
inline __half __hsub(__half a, __half b) { return __hround(double(float(a)) - double(float(b))); }
inline __half __hmul(__half a, __half b) { return __hround(double(float(a)) * double(float(b))); }
inline __half2 __hadd2(__half2 a, __half2 b) { return {__hadd(a.x, b.x), __hadd(a.y, b.y)}; }
inline __half2 __hsub2(__half2 a, __half2 b) { return {__hsub(a.x, b.x), __hsub(a.y, b.y)}; }
inline __half2 __hmul2(__half2 a, __half2 b) { return {__hmul(a.x, b.x), __hmul(a.y, b.y)}; }
