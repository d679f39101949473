// Paged decode and prefill attention against the CPU's attend_one on random caches: blocks
// scattered through the pool, -1 entries for blocks outside the window, GQA/MQA/MHA, every
// supported head size, contexts long enough for many decode splits. Outputs are poisoned
// first. Tolerance: relative L2 error per (token, head) row <= 2e-3 (f16) / 1e-2 (bf16),
// the output's rounding to the dtype.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <algorithm>

#include "cpu/attention.h"
#include "cuda_test_util.h"
#include "cuda/decode_attention.cuh"
#include "cuda/prefill_attention.cuh"

using namespace gyre;
using namespace gyre_test;

namespace {

struct AttnCase { int nh, nkv, d, bs, window; };

// Sequences with `ctx[s]` tokens of context, of which the last `chunk[s]` are this step's
// queries. Each sequence's blocks are a random subset of the pool, in random order.
struct Setup {
  AttnCase c;
  DType dt;
  int num_blocks, max_blocks;
  std::vector<int32_t> tables, positions, seq_of;
  HalfData k, v, q;
  std::vector<float> k_f, v_f;

  Setup(const AttnCase& c_, DType dt_, const std::vector<int>& ctx, const std::vector<int>& chunk, std::mt19937& rng)
      : c(c_), dt(dt_) {
    max_blocks = 0;
    for (int n : ctx) max_blocks = std::max(max_blocks, (n + c.bs - 1) / c.bs);
    num_blocks = max_blocks * static_cast<int>(ctx.size()) + 3;
    std::vector<int32_t> pool(num_blocks);
    for (int i = 0; i < num_blocks; ++i) pool[i] = i;
    std::shuffle(pool.begin(), pool.end(), rng);
    tables.assign(ctx.size() * max_blocks, -1);
    int next = 0;
    for (size_t s = 0; s < ctx.size(); ++s) {
      const int first_query = ctx[s] - chunk[s];
      const int lo = c.window > 0 ? std::max(0, first_query - c.window + 1) : 0;
      for (int b = 0; b * c.bs < ctx[s]; ++b) {
        const int id = pool[next++];
        if ((b + 1) * c.bs > lo) tables[s * max_blocks + b] = id;  // else released: -1
      }
      for (int p = first_query; p < ctx[s]; ++p) { positions.push_back(p); seq_of.push_back(static_cast<int>(s)); }
    }
    const size_t cache = size_t(num_blocks) * c.bs * c.nkv * c.d;
    k = random_half(cache, dt, rng);
    v = random_half(cache, dt, rng);
    q = random_half(positions.size() * c.nh * c.d, dt, rng, 2.0f);
  }
  int T() const { return static_cast<int>(positions.size()); }
  // The most keys any query sees: min(p + 1, window).
  int max_visible() const {
    int m = 0;
    for (int p : positions) m = std::max(m, c.window > 0 ? std::min(p + 1, c.window) : p + 1);
    return m;
  }

  // Every slot no query may read (past a sequence's last token, in released or unused blocks)
  // gets NaN or Inf bits, as reused device memory can hold: the outputs must stay exact.
  void poison_unwritten(const std::vector<int>& ctx) {
    const size_t row = size_t(c.nkv) * c.d, slots = size_t(num_blocks) * c.bs;
    std::vector<bool> written(slots, false);
    for (size_t s = 0; s < ctx.size(); ++s)
      for (int key = 0; key < ctx[s]; ++key) {
        const int block = tables[s * max_blocks + key / c.bs];
        if (block >= 0) written[size_t(block) * c.bs + key % c.bs] = true;
      }
    const uint16_t inf = dt == DType::kBF16 ? 0x7f80 : 0x7c00, nan = 0xffff;
    const uint16_t bad[] = {nan, inf, static_cast<uint16_t>(inf | 0x8000), static_cast<uint16_t>(inf | 1)};
    size_t n = 0;
    for (size_t slot = 0; slot < slots; ++slot)
      if (!written[slot])
        for (size_t i = 0; i < row; ++i, ++n) {
          k.bits[slot * row + i] = bad[n % 4];
          v.bits[slot * row + i] = bad[(n + 1) % 4];
        }
    CHECK_MSG(n > 0, "poison_unwritten: no unwritten slot");
  }

  PagedKv kv(const DeviceBuffer& kc, const DeviceBuffer& vc, const DeviceBuffer& tb) const {
    return PagedKv{kc.get(), vc.get(), tb.get<int32_t>(), max_blocks, c.bs, c.nh, c.nkv, c.d, c.window,
                   static_cast<float>(std::sqrt(double(c.d)))};
  }

  // Compares out [T, nh, d] with attend_one, row by row.
  void check(const std::vector<float>& out, const char* what) const {
    const AttentionShape shape{c.nh, c.nkv, c.d, c.bs, c.window};
    const int group = c.nh / c.nkv;
    std::vector<float> scores(positions.empty() ? 1 : *std::max_element(positions.begin(), positions.end()) + 1);
    std::vector<float> ref(c.d);
    for (int t = 0; t < T(); ++t)
      for (int h = 0; h < c.nh; ++h) {
        const size_t row = (size_t(t) * c.nh + h) * c.d;
        attend_one(shape, &q.values[row], h / group, positions[t], &tables[size_t(seq_of[t]) * max_blocks],
                   k.values.data(), v.values.data(), scores.data(), ref.data());
        const double e = rel_err(&out[row], ref, 0, c.d);
        CHECK_MSG(e <= half_tol(dt), what << " " << dtype_name(dt) << " nh " << c.nh << " nkv " << c.nkv << " d " << c.d
                                           << " bs " << c.bs << " window " << c.window << " token " << t << " (pos "
                                           << positions[t] << ") head " << h << ": err " << e);
      }
  }
};

const DType kDtypes[] = {DType::kF16, DType::kBF16};
const AttnCase kCases[] = {{4, 4, 8, 16, 0}, {8, 2, 16, 16, 16}, {4, 1, 32, 16, 0}, {8, 2, 64, 32, 100},
                       {32, 8, 128, 16, 0}, {32, 32, 128, 16, 0}, {16, 2, 128, 16, 300}, {8, 1, 64, 8, 0}};

}  // namespace

TEST(decode_attention_matches_cpu) {
  std::mt19937 rng(11);
  for (DType dt : kDtypes)
    for (const AttnCase& c : kCases) {
      const std::vector<int> ctx = c.d >= 64 ? std::vector<int>{1, 17, 600, 1300} : std::vector<int>{1, 5, 40, 150};
      Setup s(c, dt, ctx, std::vector<int>(ctx.size(), 1), rng);
      auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
      auto pos = to_device(s.positions), seq = to_device(s.seq_of);
      std::vector<int32_t> tokens(s.T());
      for (int t = 0; t < s.T(); ++t) tokens[t] = t;
      auto d_tokens = to_device(tokens);
      for (int split_len : {512 / c.bs * c.bs, 2 * c.bs}) {  // few splits, and many
        const int splits = decode_num_splits(s.max_visible(), split_len);  // as few as cover the window
        DeviceBuffer ws(sizeof(float) * decode_attention_workspace(s.T(), c.nh, splits, c.d));
        auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
        decode_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), seq.get<int32_t>(),
                         d_tokens.get<int32_t>(), s.T(), splits, split_len, ws.get<float>(), out.get(), nullptr);
        s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt),
                split_len > 2 * c.bs ? "decode" : "decode (many splits)");
      }
    }
}

TEST(prefill_attention_matches_cpu) {
  std::mt19937 rng(12);
  for (DType dt : kDtypes)
    for (const AttnCase& c : kCases) {
      // A whole prompt, a later chunk after earlier context (chunked prefill / prefix hit),
      // a short chunk, and a chunk that is not a multiple of the tile.
      const std::vector<int> ctx = {37, 300, 90, 129}, chunk = {37, 45, 2, 17};
      Setup s(c, dt, ctx, chunk, rng);
      auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
      auto pos = to_device(s.positions);
      std::vector<PrefillTile> tiles;
      int first = 0;
      for (size_t i = 0; i < ctx.size(); ++i) {
        for (int t = 0; t < chunk[i]; t += kPrefillTileQ)
          tiles.push_back({static_cast<int32_t>(i), first + t, std::min(kPrefillTileQ, chunk[i] - t)});
        first += chunk[i];
      }
      auto d_tiles = to_device(tiles);
      auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
      prefill_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), d_tiles.get<PrefillTile>(),
                        static_cast<int>(tiles.size()), out.get(), nullptr);
      s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt), "prefill");
    }
}

// Stale KV slots (what cudaMalloc hands back holds old bytes; float32 data read as f16 is NaN or
// Inf about 1 time in 32) must not reach the output: decode loads the whole last block of
// a sequence, past its last token. Small shapes, so that it also runs under emulation.
TEST(attention_ignores_nan_and_inf_in_unwritten_slots) {
  std::mt19937 rng(13);
  const AttnCase cases[] = {{4, 2, 32, 16, 0}, {4, 1, 64, 8, 20}};
  for (DType dt : kDtypes)
    for (const AttnCase& c : cases) {
      // Contexts that end mid-block; the chunks give decode (1) and prefill (> 1) queries.
      const std::vector<int> ctx = {5, 29, 45}, dec = {1, 1, 1}, pre = {5, 11, 20};
      for (const std::vector<int>* chunk : {&dec, &pre}) {
        Setup s(c, dt, ctx, *chunk, rng);
        s.poison_unwritten(ctx);
        auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
        auto pos = to_device(s.positions), seq = to_device(s.seq_of);
        auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
        if (chunk == &dec) {
          std::vector<int32_t> tokens(s.T());
          for (int t = 0; t < s.T(); ++t) tokens[t] = t;
          auto d_tokens = to_device(tokens);
          const int split_len = 2 * c.bs, splits = decode_num_splits(s.max_visible(), split_len);
          DeviceBuffer ws(sizeof(float) * decode_attention_workspace(s.T(), c.nh, splits, c.d));
          decode_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), seq.get<int32_t>(),
                           d_tokens.get<int32_t>(), s.T(), splits, split_len, ws.get<float>(), out.get(), nullptr);
        } else {
          std::vector<PrefillTile> tiles;
          int first = 0;
          for (size_t i = 0; i < ctx.size(); ++i) {
            for (int t = 0; t < (*chunk)[i]; t += kPrefillTileQ)
              tiles.push_back({static_cast<int32_t>(i), first + t, std::min(kPrefillTileQ, (*chunk)[i] - t)});
            first += (*chunk)[i];
          }
          auto d_tiles = to_device(tiles);
          prefill_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), d_tiles.get<PrefillTile>(),
                            static_cast<int>(tiles.size()), out.get(), nullptr);
        }
        s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt),
                chunk == &dec ? "decode over poisoned slots" : "prefill over poisoned slots");
      }
    }
}

TEST(host_decode_splits_cover_the_visible_keys) {
  CHECK_EQ(decode_num_splits(0, 512), 1);
  CHECK_EQ(decode_num_splits(512, 512), 1);
  CHECK_EQ(decode_num_splits(513, 512), 2);
  // Mistral at position 32000 with a 4096-key window: 8 splits, not the 63 its position would give.
  CHECK_EQ(decode_num_splits(std::min(32000 + 1, 4096), 512), 8);
  ModelConfig c;
  c.num_heads = 32;
  c.head_dim = 128;
  CHECK_EQ(decode_workspace_bytes(c, 7, 3), int64_t(sizeof(float)) * decode_attention_workspace(7, 32, 3, 128));
}

TEST(host_attention_cases_are_valid) {
  for (const AttnCase& c : kCases) CHECK(c.nh % c.nkv == 0 && c.d % 8 == 0);
}

int main(int argc, char** argv) { return cuda_test_main(argc, argv); }

#else
#include <cstdio>
int main() {
  std::printf("skipped: no CUDA backend in this build\n");
  return 77;  // ctest SKIP_RETURN_CODE
}
#endif
