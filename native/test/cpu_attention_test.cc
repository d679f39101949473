// The CPU's tiled flash attention (attend_rows) against the plain reference (attend_one) on random
// paged caches: MHA, GQA and MQA, head sizes with and without a d % 8 tail, block sizes that do
// and do not divide the key tile, sliding windows with released (-1) blocks, chunks that start
// and end mid-tile. Every cache slot no query may read holds NaN. Then batch invariance: a row's
// output is bit-identical however the rows are grouped into calls.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/attention.h"

using namespace gyre;
using namespace gyre_test;

namespace {

struct AttnCase { int nh, nkv, d, bs, window; };

const AttnCase kCases[] = {{4, 4, 8, 16, 0},    {8, 2, 16, 16, 16},  {4, 1, 32, 16, 0},  {12, 12, 64, 16, 0},
                       {8, 2, 64, 32, 100}, {32, 8, 128, 16, 0}, {4, 2, 6, 5, 0},    {6, 3, 20, 7, 9},
                       {16, 2, 128, 16, 300}, {8, 1, 64, 8, 0},  {2, 1, 36, 3, 40}};

// One sequence of `len` tokens in a pool of scattered blocks; this step's queries are the last
// `chunk` positions. Blocks wholly outside every query's window are released (-1).
struct Setup {
  AttnCase c;
  int len, chunk, num_blocks;
  std::vector<int32_t> table;
  std::vector<float> k, v, q;  // pool [num_blocks, bs, nkv, d]; q [chunk, nh, d]

  Setup(const AttnCase& cs, int len_, int chunk_, std::mt19937& rng, float q_scale) : c(cs), len(len_), chunk(chunk_) {
    const int used = (len + c.bs - 1) / c.bs;
    num_blocks = used + 3;
    std::vector<int32_t> ids(num_blocks);
    for (int i = 0; i < num_blocks; ++i) ids[i] = i;
    std::shuffle(ids.begin(), ids.end(), rng);
    table.assign(ids.begin(), ids.begin() + used);
    const int first = len - chunk;
    const int lo = c.window > 0 ? std::max(0, first - c.window + 1) : 0;
    for (int b = 0; b < used; ++b)
      if ((b + 1) * c.bs <= lo) table[b] = -1;
    const size_t slots = size_t(num_blocks) * c.bs * c.nkv * c.d;
    k.assign(slots, std::numeric_limits<float>::quiet_NaN());
    v.assign(slots, std::numeric_limits<float>::quiet_NaN());
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (int j = lo; j < len; ++j) {
      const size_t base = (size_t(table[j / c.bs]) * c.bs + j % c.bs) * c.nkv * c.d;
      for (int x = 0; x < c.nkv * c.d; ++x) k[base + x] = n(rng), v[base + x] = n(rng);
    }
    q.resize(size_t(chunk) * c.nh * c.d);
    for (auto& x : q) x = q_scale * n(rng);
  }
  AttentionShape shape() const { return {c.nh, c.nkv, c.d, c.bs, c.window}; }
  const float* q_row(int t, int h) const { return &q[(size_t(t) * c.nh + h) * c.d]; }
};

// Runs attend_rows over `blocks`, each a list of (token, head) rows sharing a KV head; returns
// out [chunk, nh, d], NaN where no block wrote.
std::vector<float> run(const Setup& s, const std::vector<std::vector<std::pair<int, int>>>& blocks) {
  std::vector<float> out(s.q.size(), std::numeric_limits<float>::quiet_NaN());
  const int group = s.c.nh / s.c.nkv;
  for (const auto& rows : blocks) {
    std::vector<const float*> q;
    std::vector<float*> o;
    std::vector<int32_t> pos;
    for (auto [t, h] : rows) {
      q.push_back(s.q_row(t, h));
      o.push_back(&out[(size_t(t) * s.c.nh + h) * s.c.d]);
      pos.push_back(s.len - s.chunk + t);
    }
    attend_rows(s.shape(), rows[0].second / group, s.table.data(), s.k.data(), s.v.data(), static_cast<int>(rows.size()),
                q.data(), pos.data(), o.data());
  }
  return out;
}

// Blocks of `span` consecutive tokens x all heads of one KV head, as the backend forms them.
std::vector<std::vector<std::pair<int, int>>> blocks_of(const Setup& s, int span) {
  const int group = s.c.nh / s.c.nkv;
  std::vector<std::vector<std::pair<int, int>>> out;
  for (int t = 0; t < s.chunk; t += span)
    for (int kvh = 0; kvh < s.c.nkv; ++kvh) {
      out.emplace_back();
      for (int u = t; u < std::min(t + span, s.chunk); ++u)
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) out.back().push_back({u, h});
    }
  return out;
}

// (len, chunk) pairs: decode, short and long chunks, starts and ends off the 32-key tile.
const std::pair<int, int> kShapes[] = {{1, 1}, {5, 5}, {33, 1}, {70, 70}, {100, 37}, {131, 64}, {257, 3}, {300, 130}};

}  // namespace

TEST(tiled_matches_reference) {
  std::mt19937 rng(1234);
  double worst = 0;
  for (const AttnCase& c : kCases)
    for (auto [len, chunk] : kShapes)
      for (float q_scale : {1.0f, 6.0f}) {
        Setup s(c, len, chunk, rng, q_scale);
        const int group = c.nh / c.nkv;
        auto got = run(s, blocks_of(s, std::max(1, 32 / group)));
        std::vector<float> scores(len), ref(c.d);
        for (int t = 0; t < chunk; ++t)
          for (int h = 0; h < c.nh; ++h) {
            attend_one(s.shape(), s.q_row(t, h), h / group, len - chunk + t, s.table.data(), s.k.data(), s.v.data(),
                       scores.data(), ref.data());
            const float* o = &got[(size_t(t) * c.nh + h) * c.d];
            for (int x = 0; x < c.d; ++x) {
              const double e = std::fabs(double(o[x]) - ref[x]);
              worst = std::max(worst, e);
              CHECK_MSG(e <= 2e-5, "nh " << c.nh << " nkv " << c.nkv << " d " << c.d << " bs " << c.bs << " window "
                                         << c.window << " len " << len << " chunk " << chunk << " q x" << q_scale
                                         << ": token " << t << " head " << h << " dim " << x << ": " << o[x]
                                         << " vs " << ref[x]);
            }
          }
      }
  std::printf("  max |tiled - reference| = %.3g\n", worst);
}

TEST(a_rows_result_does_not_depend_on_its_block) {
  std::mt19937 rng(99);
  for (const AttnCase& c : kCases)
    for (auto [len, chunk] : kShapes) {
      Setup s(c, len, chunk, rng, 3.0f);
      const int group = c.nh / c.nkv;
      auto whole = run(s, blocks_of(s, 32 / group > 0 ? 32 / group : 1));
      // One row per call (decode of MHA), one token's group per call (decode), odd spans, all at once.
      std::vector<std::vector<std::pair<int, int>>> singles;
      for (int t = 0; t < chunk; ++t)
        for (int h = 0; h < c.nh; ++h) singles.push_back({{t, h}});
      std::vector<std::vector<std::vector<std::pair<int, int>>>> variants = {singles, blocks_of(s, 1), blocks_of(s, 7),
                                                                           blocks_of(s, chunk)};
      // The rows of each KV head in reverse order, two tokens interleaved: positions need not be sorted.
      auto shuffled = blocks_of(s, 2);
      for (auto& b : shuffled) std::reverse(b.begin(), b.end());
      variants.push_back(shuffled);
      for (size_t k = 0; k < variants.size(); ++k) {
        auto got = run(s, variants[k]);
        CHECK_MSG(std::memcmp(got.data(), whole.data(), got.size() * sizeof(float)) == 0,
                  "nh " << c.nh << " nkv " << c.nkv << " d " << c.d << " bs " << c.bs << " window " << c.window << " len "
                        << len << " chunk " << chunk << ": blocking " << k << " differs");
      }
    }
}

GYRE_TEST_MAIN
