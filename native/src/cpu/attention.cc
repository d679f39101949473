// Tiled flash attention on the CPU (attend_rows). One call: the R query rows of one sequence
// that share a KV head (GQA group x a run of positions). Keys go in tiles of kTile positions
// aligned to multiples of kTile; per tile:
//
//   S[R, kTile]   = Q . K^T      score_block: FMA chains over the head dim, a fixed reduce tree
//   online softmax per row      running max and sum; keys outside the row's window weigh 0
//   acc[R, d]    += P . V        accumulate_block: P broadcast, V rows, keys in ascending order
//
// Every row sees the same tiles and the same arithmetic whatever else is in its call, so results
// are bit-identical across batching, chunking and threads. Only keys inside some row's window are
// read: with a sliding window the blocks below it may already be released.
#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/simd.h"
#include "cpu/exp8.h"

namespace gyre {

namespace {

// Four 8-lane accumulators summed, one per lane of the result, by the tree
// ((a0+a1)+(a2+a3)) + ((a4+a5)+(a6+a7)). Every score attend_rows computes goes through it.
inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 0x55));
  return _mm_cvtss_f32(m);
}

constexpr int kTile = kAttentionKeyTile;
static_assert(kTile % 8 == 0, "key tiles are whole 8-lane vectors");

// s[r * ld + j] = q[r] . k[j] for R rows and K keys (K a multiple of 4). Each score is one FMA
// chain per lane over the head dimension, reduce4's tree, then the d % 8 tail in order: the same
// arithmetic whatever R and K are, so a score does not depend on its neighbours in the block.
template <int R, int K>
inline void score_block(const float* const* q, const float* const* k, int d, float* s, int ld) {
  __m256 acc[R][K];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int j = 0; j < K; ++j) acc[r][j] = _mm256_setzero_ps();
  const int d8 = d & ~7;
  for (int i = 0; i < d8; i += 8) {
    __m256 qv[R];
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) qv[r] = _mm256_loadu_ps(q[r] + i);
    #pragma GCC unroll 16
    for (int j = 0; j < K; ++j) {
      const __m256 kv = _mm256_loadu_ps(k[j] + i);
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(qv[r], kv, acc[r][j]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int j = 0; j < K; j += 4) {
      float* out = s + r * ld + j;
      _mm_storeu_ps(out, reduce4(acc[r][j], acc[r][j + 1], acc[r][j + 2], acc[r][j + 3]));
      for (int i = d8; i < d; ++i)
        #pragma GCC unroll 16
        for (int x = 0; x < 4; ++x) out[x] = std::fma(q[r][i], k[j + x][i], out[x]);
    }
}

// acc[r * d + c0 .. c0 + 8C) += sum over i in [i0, i1] of p[r * kTile + i] * v[i][...], i ascending.
template <int R, int C>
inline void accumulate_block(const float* p, int i0, int i1, const float* const* v, int c0, float* acc, int d) {
  __m256 a[R][C];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) a[r][c] = _mm256_loadu_ps(acc + r * d + c0 + 8 * c);
  for (int i = i0; i <= i1; ++i) {
    __m256 pv[R];
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) pv[r] = _mm256_broadcast_ss(p + r * kTile + i);
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __m256 vv = _mm256_loadu_ps(v[i] + c0 + 8 * c);
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) a[r][c] = _mm256_fmadd_ps(pv[r], vv, a[r][c]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(acc + r * d + c0 + 8 * c, a[r][c]);
}

// All head dimensions of R rows: blocks of C vectors, single vectors, then the scalar tail.
template <int R, int C>
inline void accumulate_rows(const float* p, int i0, int i1, const float* const* v, float* acc, int d) {
  const int d8 = d & ~7;
  int c0 = 0;
  for (; c0 + 8 * C <= d8; c0 += 8 * C) accumulate_block<R, C>(p, i0, i1, v, c0, acc, d);
  for (; c0 < d8; c0 += 8) accumulate_block<R, 1>(p, i0, i1, v, c0, acc, d);
  for (int x = d8; x < d; ++x)
    for (int i = i0; i <= i1; ++i)
      for (int r = 0; r < R; ++r) acc[r * d + x] = std::fma(p[r * kTile + i], v[i][x], acc[r * d + x]);
}

struct Scratch {
  std::vector<float> s;    // [rows, kTile]: scores, then probabilities
  std::vector<float> acc;  // [rows, head_dim]: running sum of p * v
  std::vector<float> max, sum;
  std::vector<int> lo;
};

// Not inlined: with -fPIC a thread_local is reached through a call, which inside a loop would
// spill every vector register.
__attribute__((noinline)) Scratch& scratch() {
  thread_local Scratch w;
  return w;
}

}  // namespace

void attend_rows(const AttentionShape& s, int kv_head, const int32_t* block_table, const float* k_cache,
                 const float* v_cache, int num_rows, const float* const* q, const int32_t* positions,
                 float* const* out) {
  const int d = s.head_dim, R = num_rows;
  if (R <= 0) return;
  Scratch& w = scratch();
  w.s.resize(static_cast<size_t>(R) * kTile);
  w.acc.assign(static_cast<size_t>(R) * d, 0.0f);
  w.max.assign(R, -std::numeric_limits<float>::infinity());
  w.sum.assign(R, 0.0f);
  w.lo.resize(R);
  float* const S = w.s.data();
  float* const acc_all = w.acc.data();
  float* const row_max = w.max.data();
  float* const row_sum = w.sum.data();
  int* const row_lo = w.lo.data();
  const float* kp[kTile];
  const float* vp[kTile];
  int min_lo = positions[0], max_p = positions[0];
  for (int r = 0; r < R; ++r) {
    row_lo[r] = s.sliding_window > 0 ? std::max(0, positions[r] - s.sliding_window + 1) : 0;
    min_lo = std::min(min_lo, row_lo[r]);
    max_p = std::max(max_p, positions[r]);
  }
  const int64_t token_stride = static_cast<int64_t>(s.num_kv_heads) * d;
  const int64_t block_stride = token_stride * s.block_size;
  const int64_t head_offset = static_cast<int64_t>(kv_head) * d;
  // Cache offsets of keys [j0, j1] into off[j - t0], walking the block table (no division per key).
  auto offsets = [&](int t0, int j0, int j1, int64_t* off) {
    int blk = j0 / s.block_size, in_blk = j0 % s.block_size;
    for (int j = j0; j <= j1; ++j) {
      off[j - t0] = block_table[blk] * block_stride + in_blk * token_stride + head_offset;
      if (++in_blk == s.block_size) in_blk = 0, ++blk;
    }
  };
  auto prefetch_rows = [&](const float* cache, const int64_t* off, int n) {
    for (int i = 0; i < n; ++i)
      for (int x = 0; x < d; x += 16) _mm_prefetch(reinterpret_cast<const char*>(cache + off[i] + x), _MM_HINT_T0);
  };
  const __m256 scale = _mm256_set1_ps(static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))));
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const int kgroup = R == 1 ? 8 : 4;  // keys per score_block
  int64_t off_buf[2][kTile];          // this tile's key offsets and the next one's

  const int first_tile = min_lo - min_lo % kTile;
  offsets(first_tile, std::max(first_tile, min_lo), std::min(first_tile + kTile - 1, max_p), off_buf[0]);
  for (int t0 = first_tile, cur = 0; t0 <= max_p; t0 += kTile, cur ^= 1) {
    // Keys [j0, j1] are in some row's window; only they are read (others may be released blocks).
    const int j0 = std::max(t0, min_lo), j1 = std::min(t0 + kTile - 1, max_p);
    const int i0 = j0 - t0, i1 = j1 - t0;
    const int64_t* off = off_buf[cur];
    // The next tile's keys are fetched while this one is computed (decode streams the cache).
    if (t0 + kTile <= max_p) {
      const int n0 = t0 + kTile, n1 = std::min(t0 + 2 * kTile - 1, max_p);
      offsets(n0, n0, n1, off_buf[cur ^ 1]);
      prefetch_rows(k_cache, off_buf[cur ^ 1], n1 - n0 + 1);
    }
    prefetch_rows(v_cache, off + i0, i1 - i0 + 1);
    const int g0 = i0 - i0 % kgroup, g1 = i1 - i1 % kgroup + kgroup;  // whole key groups, padded
    for (int i = g0; i < g1; ++i) {
      const int64_t o = off[std::min(std::max(i, i0), i1)];
      kp[i] = k_cache + o;
      vp[i] = v_cache + o;
    }
    // Scores of every row against the tile's keys (padding keys are scored, then masked).
    int r = 0;
    if (R == 1) {
      for (int i = g0; i < g1; i += 8) score_block<1, 8>(q, kp + i, d, S + i, kTile);
      r = 1;
    }
    for (; r + 3 <= R; r += 3)
      for (int i = g0; i < g1; i += 4) score_block<3, 4>(q + r, kp + i, d, S + r * kTile + i, kTile);
    for (; r + 2 <= R; r += 2)
      for (int i = g0; i < g1; i += 4) score_block<2, 4>(q + r, kp + i, d, S + r * kTile + i, kTile);
    for (; r < R; ++r)
      for (int i = g0; i < g1; i += 4) score_block<1, 4>(q + r, kp + i, d, S + r * kTile + i, kTile);

    // Online softmax, row by row: key t0 + i counts for row r iff lo[r] <= t0 + i <= p[r].
    for (r = 0; r < R; ++r) {
      float* sr = S + r * kTile;
      const int lo = row_lo[r], p = positions[r];
      if (lo > t0 + kTile - 1 || p < t0) {  // the row's window misses this tile
        std::fill(sr, sr + kTile, 0.0f);
        continue;
      }
      // Only the 8-key groups that hold some of the row's keys; the others weigh 0, and adding
      // 0 to the sum changes no bit, so skipping them keeps the result blocking-independent.
      const int gl = (std::max(lo, t0) - t0) / 8, gh = (std::min(p, t0 + kTile - 1) - t0) / 8;
      std::fill(sr, sr + 8 * gl, 0.0f);
      std::fill(sr + 8 * (gh + 1), sr + kTile, 0.0f);
      const __m256i lo_m1 = _mm256_set1_epi32(lo - 1), p_p1 = _mm256_set1_epi32(p + 1);
      __m256 x[kTile / 8], valid[kTile / 8];
      __m256 mx = neg_inf;
      for (int g = gl; g <= gh; ++g) {
        const __m256i key = _mm256_add_epi32(_mm256_set1_epi32(t0 + 8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        valid[g] = _mm256_castsi256_ps(
            _mm256_and_si256(_mm256_cmpgt_epi32(key, lo_m1), _mm256_cmpgt_epi32(p_p1, key)));
        x[g] = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(_mm256_loadu_ps(sr + 8 * g), scale), valid[g]);
        mx = _mm256_max_ps(mx, x[g]);
      }
      const float m_old = row_max[r], m_new = std::max(m_old, hmax(mx));
      const __m256 m = _mm256_set1_ps(m_new);
      __m256 total = _mm256_setzero_ps();
      for (int g = gl; g <= gh; ++g) {
        const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(x[g], m)), valid[g]);
        _mm256_storeu_ps(sr + 8 * g, e);
        total = _mm256_add_ps(total, e);
      }
      float sum = hsum(total);
      if (m_old != -std::numeric_limits<float>::infinity() && m_new != m_old) {
        const float alpha = _mm256_cvtss_f32(exp8(_mm256_set1_ps(m_old - m_new)));
        sum = row_sum[r] * alpha + sum;
        const __m256 a = _mm256_set1_ps(alpha);
        float* acc = acc_all + static_cast<size_t>(r) * d;
        const int d8 = d & ~7;
        for (int x8 = 0; x8 < d8; x8 += 8) _mm256_storeu_ps(acc + x8, _mm256_mul_ps(_mm256_loadu_ps(acc + x8), a));
        for (int x1 = d8; x1 < d; ++x1) acc[x1] *= alpha;
      } else {
        sum = row_sum[r] + sum;
      }
      row_sum[r] = sum;
      row_max[r] = m_new;
    }

    // acc += p . v over the keys read; a row's weights outside its window are 0 and add nothing.
    float* acc = acc_all;
    for (r = 0; r + 4 <= R; r += 4)
      accumulate_rows<4, 2>(S + r * kTile, i0, i1, vp, acc + static_cast<size_t>(r) * d, d);
    for (; r + 2 <= R; r += 2)
      accumulate_rows<2, 4>(S + r * kTile, i0, i1, vp, acc + static_cast<size_t>(r) * d, d);
    if (r < R) accumulate_rows<1, 8>(S + r * kTile, i0, i1, vp, acc + static_cast<size_t>(r) * d, d);
  }

  for (int r = 0; r < R; ++r) {
    const float inv = 1.0f / row_sum[r];
    const float* acc = acc_all + static_cast<size_t>(r) * d;
    const __m256 iv = _mm256_set1_ps(inv);
    const int d8 = d & ~7;
    for (int x = 0; x < d8; x += 8) _mm256_storeu_ps(out[r] + x, _mm256_mul_ps(_mm256_loadu_ps(acc + x), iv));
    for (int x = d8; x < d; ++x) out[r][x] = acc[x] * inv;
  }
}

}  // namespace gyre
