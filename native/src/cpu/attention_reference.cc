// attend_one: the plain reference for the CPU and CUDA attention kernels (one query row at a
// time, all its scores, then one softmax).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "cpu/exp8.h"
#include "common/simd.h"

namespace gyre {

static inline float dot(const float* a, const float* b, int d) {
  __m256 acc = _mm256_setzero_ps();
  const int d8 = d & ~7;
  for (int i = 0; i < d8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (int i = d8; i < d; ++i) s = std::fma(a[i], b[i], s);
  return s;
}

namespace {

// scores[i] = exp(scores[i] - max) for i in [0, n); every element goes through exp8, the tail padded.
inline void exp_shifted(float* scores, int n, float max) {
  const __m256 m = _mm256_set1_ps(max);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(scores + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + i), m)));
  if (i < n) {
    alignas(32) float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = i; k < n; ++k) tail[k - i] = scores[k];
    _mm256_store_ps(tail, exp8(_mm256_sub_ps(_mm256_load_ps(tail), m)));
    for (int k = i; k < n; ++k) scores[k] = tail[k - i];
  }
}

// Four dot products side by side: four independent FMA chains instead of one. Each result is
// computed exactly as dot() computes it (same lanes, same order, same horizontal sum).
inline void dot4(const float* q, const float* k0, const float* k1, const float* k2, const float* k3, int d,
                 float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int d8 = d & ~7;
  for (int i = 0; i < d8; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
  }
  float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
  for (int i = d8; i < d; ++i) {
    s0 = std::fma(q[i], k0[i], s0);
    s1 = std::fma(q[i], k1[i], s1);
    s2 = std::fma(q[i], k2[i], s2);
    s3 = std::fma(q[i], k3[i], s3);
  }
  out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
}

// out[0, D) = sum_j p_j * v_j, D a multiple of 8 known at compile time: the accumulators stay in
// registers. Each lane's sum runs over j in ascending order, exactly as the generic loop does.
template <int D>
void weighted_sum(const float* scores, float inv, int n, const float* const* rows, float* out) {
  __m256 acc[D / 8];
  for (int i = 0; i < D / 8; ++i) acc[i] = _mm256_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const __m256 pv = _mm256_set1_ps(scores[j] * inv);
    for (int i = 0; i < D / 8; ++i) acc[i] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(rows[j] + 8 * i), acc[i]);
  }
  for (int i = 0; i < D / 8; ++i) _mm256_storeu_ps(out + 8 * i, acc[i]);
}

}  // namespace

void attend_one(const AttentionShape& s, const float* q, int kv_head, int position, const int32_t* block_table,
                const float* k_cache, const float* v_cache, float* scores, float* out) {
  const int d = s.head_dim;
  const int lo = s.sliding_window > 0 ? std::max(0, position - s.sliding_window + 1) : 0;
  const int n = position - lo + 1;
  const int64_t token_stride = static_cast<int64_t>(s.num_kv_heads) * d;
  const int64_t block_stride = token_stride * s.block_size;
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(d)));
  auto row = [&](const float* cache, int j) {
    return cache + block_table[j / s.block_size] * block_stride + (j % s.block_size) * token_stride +
           static_cast<int64_t>(kv_head) * d;
  };
  int j = lo;
  for (; j + 4 <= position + 1; j += 4)
    dot4(q, row(k_cache, j), row(k_cache, j + 1), row(k_cache, j + 2), row(k_cache, j + 3), d, scores + (j - lo));
  for (; j <= position; ++j) scores[j - lo] = dot(q, row(k_cache, j), d);
  float max_score = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) {
    scores[i] = scores[i] / scale;
    max_score = std::max(max_score, scores[i]);
  }
  exp_shifted(scores, n, max_score);
  float sum = 0.0f;
  for (int j = 0; j < n; ++j) sum += scores[j];
  const float inv = 1.0f / sum;
  if (d == 64 || d == 128) {
    thread_local std::vector<const float*> rows;
    if (rows.size() < static_cast<size_t>(n)) rows.resize(n);
    for (int j = 0; j < n; ++j) rows[j] = row(v_cache, lo + j);
    if (d == 64) weighted_sum<64>(scores, inv, n, rows.data(), out);
    else weighted_sum<128>(scores, inv, n, rows.data(), out);
    return;
  }
  std::fill(out, out + d, 0.0f);
  const int d8 = d & ~7;
  for (int j = 0; j < n; ++j) {
    const float p = scores[j] * inv;
    const float* v = row(v_cache, lo + j);
    const __m256 pv = _mm256_set1_ps(p);
    for (int i = 0; i < d8; i += 8)
      _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
    for (int i = d8; i < d; ++i) out[i] = std::fma(p, v[i], out[i]);
  }
}

}  // namespace gyre
