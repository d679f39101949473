// The int8 quantizer (see weights.h): one float32 scale per row, round-half-even, clamp +-127.
// AVX2 and the scalar tail give the same bits: IEEE division and rounding are exact operations.
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "common/simd.h"
#include "gyre/error.h"
#include "gyre/weights.h"

namespace gyre {

const char* quantization_name(Quantization q) { return q == Quantization::kInt8 ? "int8" : "none"; }

void quantize_int8_rows(const TensorView& w, int8_t* q, float* scale) {
  if (w.shape.size() != 2) throw Error("quantize_int8_rows: expected a matrix, got shape " + shape_str(w.shape));
  if (w.dtype != DType::kF32 && w.dtype != DType::kF16 && w.dtype != DType::kBF16)
    throw Error(std::string("quantize_int8_rows: dtype ") + dtype_name(w.dtype) + " is not F32, F16 or BF16");
  const int64_t rows = w.shape[0], cols = w.shape[1];
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t i = r * cols + k;
      row[k] = w.dtype == DType::kF32 ? w.as<float>()[i]
               : w.dtype == DType::kF16 ? half_to_float(w.as<uint16_t>()[i])
                                        : bf16_to_float(w.as<uint16_t>()[i]);
    }
    float amax = 0.0f;
    bool finite = true;
    for (int64_t k = 0; k < cols; ++k) {
      finite &= std::isfinite(row[k]);
      amax = std::max(amax, std::fabs(row[k]));
    }
    if (!finite) throw Error("quantize_int8_rows: row " + std::to_string(r) + " holds a non-finite value");
    const float s = amax / 127.0f;
    scale[r] = s;
    int8_t* out = q + r * cols;
    if (s == 0.0f) {
      for (int64_t k = 0; k < cols; ++k) out[k] = 0;
      continue;
    }
    const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
      __m256 v = _mm256_div_ps(_mm256_loadu_ps(row.data() + k), vs);
      v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      alignas(32) int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_cvtps_epi32(v));
      for (int j = 0; j < 8; ++j) out[k + j] = static_cast<int8_t>(t[j]);
    }
    for (; k < cols; ++k) out[k] = static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(row[k] / s))));
  }
}

}  // namespace gyre
