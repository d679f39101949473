// Paged decode, prefill and flash prefill attention against the CPU's attend_one on random
// caches: blocks scattered through the pool, -1 entries for blocks outside the window,
// GQA/MQA/MHA, every supported head size, one to many decode splits, batches of 1 to 64.
// Outputs are poisoned first, and every slot no query may read (unreferenced blocks, slots
// past a sequence's end) holds NaN or Inf bits. Tolerance: relative L2 error per (token, head)
// row <= 2e-3 (f16) / 1e-2 (bf16), the output's rounding to the dtype.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <algorithm>
#include <iterator>

#include "cpu/attention.h"
#include "cuda_test_util.h"
#include "cuda/decode_attention.cuh"
#include "cuda/flash_prefill.cuh"
#include "cuda/prefill_attention.cuh"
#include "gyre/gpu_memory.h"

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

// Runs decode_attention on every token of `s` with `splits` splits and checks it.
void run_decode(const Setup& s, int splits, const char* what) {
  auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
  auto pos = to_device(s.positions), seq = to_device(s.seq_of);
  std::vector<int32_t> tokens(s.T());
  for (int t = 0; t < s.T(); ++t) tokens[t] = t;
  auto d_tokens = to_device(tokens);
  DeviceBuffer ws(sizeof(float) * decode_attention_workspace(s.T(), s.c.nh, splits, s.c.d));
  auto out = poisoned(size_t(s.T()) * s.c.nh * s.c.d * 2);
  decode_attention(s.dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), seq.get<int32_t>(), d_tokens.get<int32_t>(),
                   s.T(), splits, ws.get<float>(), out.get(), nullptr);
  s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * s.c.nh * s.c.d), s.dt), what);
}

}  // namespace

TEST(decode_attention_matches_cpu) {
  std::mt19937 rng(11);
  for (int di = 0; di < 2; ++di)
    for (int ci = 0; ci < int(std::size(kCases)); ++ci) {
      if (!in_quick_half(di, ci)) continue;
      const DType dt = kDtypes[di];
      const AttnCase& c = kCases[ci];
      const std::vector<int> ctx = c.d >= 64 ? std::vector<int>{1, 17, 90, 300} : std::vector<int>{1, 5, 40, 150};
      Setup s(c, dt, ctx, std::vector<int>(ctx.size(), 1), rng);
      s.poison_unwritten(ctx);
      const int chunks = ctx.back() / 16 + 2;
      for (int splits : {1, 3, chunks}) run_decode(s, splits, splits == 1 ? "decode" : "decode (splits)");
    }
}

// Batches of 1 to 64 tokens with ragged contexts, splits as the backend picks them for an A10G.
TEST(decode_attention_batches_match_cpu) {
  std::mt19937 rng(13);
  const AttnCase cases[] = {{32, 32, 128, 16, 0}, {32, 8, 128, 16, 40}, {8, 1, 64, 16, 0}, {16, 4, 64, 8, 33}};
  for (const AttnCase& c : cases)
    for (int batch : {1, 2, 9, 64}) {
      const DType dt = batch % 2 ? DType::kF16 : DType::kBF16;
      std::vector<int> ctx(batch);
      for (int& n : ctx) n = std::uniform_int_distribution<int>(1, batch > 9 ? 70 : 200)(rng);
      Setup s(c, dt, ctx, std::vector<int>(ctx.size(), 1), rng);
      s.poison_unwritten(ctx);
      int max_visible = 0;
      for (int p : s.positions) max_visible = std::max(max_visible, c.window > 0 ? std::min(p + 1, c.window) : p + 1);
      const PagedKv shape{nullptr, nullptr, nullptr, 0, c.bs, c.nh, c.nkv, c.d, c.window, 1.0f};
      run_decode(s, decode_attention_splits(shape, batch, max_visible, 80), "decode (batch)");
    }
}

// The grid fills at least 2 blocks per SM at batch 1 where the context has the chunks for it,
// and stops splitting where it does not.
TEST(host_decode_splits_fill_the_gpu) {
  auto blocks = [](int nh, int nkv, int d, int n, int keys, int sms) {
    const PagedKv kv{nullptr, nullptr, nullptr, 0, 16, nh, nkv, d, 0, 1.0f};
    return int64_t(n) * nkv * decode_attention_splits(kv, n, keys, sms);
  };
  CHECK(blocks(32, 32, 128, 1, 1000, 80) >= 160);   // Llama-2-7B, A10G
  CHECK(blocks(32, 8, 128, 1, 1000, 80) >= 160);    // Mistral-7B
  CHECK(blocks(40, 40, 128, 1, 4000, 132) >= 264);  // Llama-2-13B, H100
  CHECK_EQ(blocks(32, 8, 128, 64, 1000, 80), 64 * 8);  // a full batch needs no split
  // 40 keys are 3 chunks at most: 2 warps per block need no more than 2 splits.
  CHECK(blocks(32, 8, 128, 1, 40, 80) <= 2 * 8);
  CHECK_EQ(blocks(32, 8, 128, 1, 1, 80), 8);
  // Workspace rows (tokens x splits) stay within n + 2 x SMs (MQA splits the most).
  const PagedKv mqa{nullptr, nullptr, nullptr, 0, 16, 8, 1, 128, 0, 1.0f};
  for (int n = 1; n <= 300; ++n) CHECK(int64_t(n) * decode_attention_splits(mqa, n, 100000, 132) <= n + 2 * 132);
}

namespace {

// Tiles of `tile_tokens` query tokens over each sequence's chunk.
std::vector<PrefillTile> make_tiles(const std::vector<int>& chunk, int tile_tokens) {
  std::vector<PrefillTile> tiles;
  int first = 0;
  for (size_t i = 0; i < chunk.size(); ++i) {
    for (int t = 0; t < chunk[i]; t += tile_tokens)
      tiles.push_back({static_cast<int32_t>(i), first + t, std::min(tile_tokens, chunk[i] - t)});
    first += chunk[i];
  }
  return tiles;
}

}  // namespace

TEST(prefill_attention_matches_cpu) {
  std::mt19937 rng(12);
  for (DType dt : kDtypes)
    for (const AttnCase& c : kCases) {
      // A whole prompt, a later chunk after earlier context (chunked prefill / prefix hit),
      // a short chunk, and a chunk that is not a multiple of the tile.
      const std::vector<int> ctx = {37, 300, 90, 129}, chunk = {37, 45, 2, 17};
      Setup s(c, dt, ctx, chunk, rng);
      s.poison_unwritten(ctx);
      auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
      auto pos = to_device(s.positions);
      const std::vector<PrefillTile> tiles = make_tiles(chunk, kPrefillTileQ);
      auto d_tiles = to_device(tiles);
      auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
      prefill_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), d_tiles.get<PrefillTile>(),
                        static_cast<int>(tiles.size()), out.get(), nullptr);
      s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt), "prefill");
    }
}

// Head dims 64/128; GQA groups 1, 3 (padding rows), 4, 8 and MQA; windows; block sizes 8-32.
TEST(flash_prefill_matches_cpu) {
  std::mt19937 rng(14);
  const AttnCase cases[] = {{4, 4, 64, 16, 0},  {16, 4, 64, 16, 0}, {6, 2, 64, 16, 0},     {8, 2, 64, 8, 50},
                            {8, 1, 128, 16, 0}, {32, 4, 128, 32, 0}, {4, 4, 128, 16, 100}, {4, 1, 128, 16, 70}};
  for (DType dt : kDtypes)
    for (const AttnCase& c : cases) {
      // A whole prompt, a chunk after earlier context (chunked prefill / prefix hit), a short
      // chunk, a chunk that is not a multiple of the tile, a single token.
      const std::vector<int> ctx = {37, 300, 90, 129, 1}, chunk = {37, 70, 2, 17, 1};
      Setup s(c, dt, ctx, chunk, rng);
      s.poison_unwritten(ctx);
      auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
      auto pos = to_device(s.positions);
      const int group = c.nh / c.nkv;
      CHECK(flash_prefill_supported(c.d, group));
      const std::vector<PrefillTile> tiles = make_tiles(chunk, flash_prefill_tile_tokens(group));
      auto d_tiles = to_device(tiles);
      auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
      flash_prefill_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), d_tiles.get<PrefillTile>(),
                              static_cast<int>(tiles.size()), out.get(), nullptr);
      s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt), "flash prefill");
    }
}

TEST(host_flash_prefill_shapes) {
  CHECK(flash_prefill_supported(128, 1) && flash_prefill_supported(64, 8) && flash_prefill_supported(128, 64));
  CHECK(!flash_prefill_supported(32, 1) && !flash_prefill_supported(128, 65));
  CHECK_EQ(flash_prefill_tile_tokens(1), 64);
  CHECK_EQ(flash_prefill_tile_tokens(4), 16);
  CHECK_EQ(flash_prefill_tile_tokens(3), 21);
}

// Stale KV slots (what cudaMalloc hands back holds old bytes; float32 data read as f16 is NaN or
// Inf about 1 time in 32) must not reach the output: a kernel that loads whole KV blocks reads
// past a sequence's last token. Small shapes, so that it also runs under emulation.
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
        if (chunk == &dec) {
          run_decode(s, 3, "decode over poisoned slots");
          continue;
        }
        auto kc = to_device(s.k.bits), vc = to_device(s.v.bits), tb = to_device(s.tables), q = to_device(s.q.bits);
        auto pos = to_device(s.positions);
        auto out = poisoned(size_t(s.T()) * c.nh * c.d * 2);
        const std::vector<PrefillTile> tiles = make_tiles(*chunk, kPrefillTileQ);
        auto d_tiles = to_device(tiles);
        prefill_attention(dt, s.kv(kc, vc, tb), q.get(), pos.get<int32_t>(), d_tiles.get<PrefillTile>(),
                          static_cast<int>(tiles.size()), out.get(), nullptr);
        s.check(to_floats(from_device<uint16_t>(out, size_t(s.T()) * c.nh * c.d), dt),
                "prefill over poisoned slots");
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
GYRE_SKIP_MAIN("no CUDA backend in this build")
#endif
