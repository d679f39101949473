#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/simd.h"

namespace gyre {

static inline float dot(const float* a, const float* b, int d) {
  __m256 acc = _mm256_setzero_ps();
  const int d8 = d & ~7;
  for (int i = 0; i < d8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (int i = d8; i < d; ++i) s = std::fma(a[i], b[i], s);
  return s;
}

void attend_one(const AttentionShape& s, const float* q, int kv_head, int position, const int32_t* block_table,
                const float* k_cache, const float* v_cache, float* scores, float* out) {
  const int d = s.head_dim;
  const int lo = s.sliding_window > 0 ? std::max(0, position - s.sliding_window + 1) : 0;
  const int64_t token_stride = static_cast<int64_t>(s.num_kv_heads) * d;
  const int64_t block_stride = token_stride * s.block_size;
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(d)));
  auto row = [&](const float* cache, int j) {
    return cache + block_table[j / s.block_size] * block_stride + (j % s.block_size) * token_stride +
           static_cast<int64_t>(kv_head) * d;
  };
  float max_score = -std::numeric_limits<float>::infinity();
  for (int j = lo; j <= position; ++j) {
    float sc = dot(q, row(k_cache, j), d) / scale;
    scores[j - lo] = sc;
    max_score = std::max(max_score, sc);
  }
  float sum = 0.0f;
  for (int j = lo; j <= position; ++j) {
    float e = std::exp(scores[j - lo] - max_score);
    scores[j - lo] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + d, 0.0f);
  const int d8 = d & ~7;
  for (int j = lo; j <= position; ++j) {
    const float p = scores[j - lo] * inv;
    const float* v = row(v_cache, j);
    const __m256 pv = _mm256_set1_ps(p);
    for (int i = 0; i < d8; i += 8)
      _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
    for (int i = d8; i < d; ++i) out[i] = std::fma(p, v[i], out[i]);
  }
}

}  // namespace gyre
