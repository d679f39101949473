#include "engine/block_manager.h"

#include <numeric>

#include "check.h"

using gyre::BlockManager;
using gyre::CachedPrefix;
using gyre::KvBlocks;

static std::vector<int32_t> iota_tokens(int n, int start = 100) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

TEST(allocate_and_free_count_blocks) {
  BlockManager bm(8, 4);
  KvBlocks kv;
  CHECK(bm.can_allocate(kv, {}, 9));
  bm.allocate(kv, {}, 9);  // 9 tokens: 3 blocks
  CHECK_EQ(kv.block_ids.size(), 3u);
  CHECK_EQ(bm.num_used_blocks(), 3);
  CHECK_EQ(bm.num_free_blocks(), 5);
  bm.allocate(kv, {}, 12);  // still 3 blocks
  CHECK_EQ(kv.block_ids.size(), 3u);
  bm.allocate(kv, {}, 13);
  CHECK_EQ(kv.block_ids.size(), 4u);
  for (int32_t b : kv.block_ids) CHECK_EQ(bm.ref_count(b), 1);
  bm.free(kv);
  CHECK(kv.block_ids.empty());
  CHECK_EQ(bm.num_used_blocks(), 0);
  CHECK_EQ(bm.num_free_blocks(), 8);
  CHECK_EQ(bm.num_cached_blocks(), 0);  // never hashed: nothing cached
}

TEST(can_allocate_refuses_when_full) {
  BlockManager bm(4, 4);
  KvBlocks a, b;
  bm.allocate(a, {}, 12);
  CHECK(bm.can_allocate(b, {}, 4));
  CHECK(!bm.can_allocate(b, {}, 5));
  CHECK(!bm.can_allocate(a, {}, 17));
  CHECK(bm.can_allocate(a, {}, 16));
}

TEST(prefix_hash_reuse_shares_blocks) {
  BlockManager bm(16, 4);
  std::vector<int32_t> tokens = iota_tokens(10);
  KvBlocks a;
  bm.allocate(a, {}, 10);
  bm.cache_full_blocks(a, tokens, 10);
  CHECK_EQ(a.block_hashes.size(), 2u);  // the partial third block is never hashed
  CHECK(bm.holds_hash(a.block_ids[0]));
  CHECK(bm.holds_hash(a.block_ids[1]));
  CHECK(!bm.holds_hash(a.block_ids[2]));

  std::vector<int32_t> other = tokens;
  other[9] = 7;  // same first 8 tokens
  other.push_back(8);
  CachedPrefix prefix = bm.find_cached_prefix(other);
  CHECK_EQ(prefix.block_ids.size(), 2u);
  CHECK_EQ(prefix.block_ids[0], a.block_ids[0]);
  CHECK_EQ(prefix.block_ids[1], a.block_ids[1]);
  KvBlocks b;
  CHECK(bm.can_allocate(b, prefix, 11));
  bm.allocate(b, prefix, 11);
  CHECK_EQ(b.block_ids.size(), 3u);
  CHECK_EQ(bm.ref_count(a.block_ids[0]), 2);
  CHECK_EQ(bm.ref_count(a.block_ids[1]), 2);
  CHECK(b.block_ids[2] != a.block_ids[2]);
  CHECK_EQ(bm.num_used_blocks(), 4);
  CHECK_EQ(bm.prefix_hit_tokens(), 8);
  CHECK_EQ(bm.prefix_query_tokens(), 11);  // a was allocated without a lookup

  // A different first block: nothing shared, even if later tokens match.
  std::vector<int32_t> diverged = tokens;
  diverged[0] = 1;
  CHECK(bm.find_cached_prefix(diverged).block_ids.empty());
}

TEST(cache_hit_never_covers_the_whole_sequence) {
  BlockManager bm(16, 4);
  std::vector<int32_t> tokens = iota_tokens(8);
  KvBlocks a;
  bm.allocate(a, {}, 8);
  bm.cache_full_blocks(a, tokens, 8);
  CHECK_EQ(a.block_hashes.size(), 2u);
  // Same 8 tokens: only the first block may hit, so the last token is computed.
  CHECK_EQ(bm.find_cached_prefix(tokens).block_ids.size(), 1u);
  std::vector<int32_t> longer = iota_tokens(9);
  CHECK_EQ(bm.find_cached_prefix(longer).block_ids.size(), 2u);
}

TEST(only_computed_blocks_are_hashed) {
  BlockManager bm(16, 4);
  std::vector<int32_t> tokens = iota_tokens(12);
  KvBlocks a;
  bm.allocate(a, {}, 12);
  bm.cache_full_blocks(a, tokens, 7);  // block 1 half computed
  CHECK_EQ(a.block_hashes.size(), 1u);
  CHECK(!bm.holds_hash(a.block_ids[1]));
  bm.cache_full_blocks(a, tokens, 12);
  CHECK_EQ(a.block_hashes.size(), 3u);
}

TEST(freed_cached_blocks_stay_reusable_then_lru_evicts) {
  BlockManager bm(4, 2);
  std::vector<int32_t> ta = {1, 2, 3, 4, 5};  // blocks [1 2] [3 4] + partial
  std::vector<int32_t> tb = {9, 8, 7};        // block [9 8] + partial
  KvBlocks a, b;
  bm.allocate(a, {}, 5);
  bm.cache_full_blocks(a, ta, 5);
  const int32_t a0 = a.block_ids[0], a1 = a.block_ids[1];
  bm.free(a);  // frees tail first: a's partial (uncached), a1, then a0
  CHECK_EQ(bm.num_cached_blocks(), 2);
  CHECK_EQ(bm.num_free_blocks(), 4);
  bm.allocate(b, {}, 3);  // 2 blocks: the two uncached free ones first
  bm.cache_full_blocks(b, tb, 3);
  CHECK_EQ(bm.num_cached_blocks(), 2);
  CHECK_EQ(bm.find_cached_prefix(ta).block_ids.size(), 2u);

  KvBlocks c;  // needs one block: evicts the least recently freed cached block, a1
  bm.allocate(c, {}, 1);
  CHECK_EQ(c.block_ids[0], a1);
  CHECK_EQ(bm.num_cached_blocks(), 1);
  CachedPrefix hit = bm.find_cached_prefix(ta);
  CHECK_EQ(hit.block_ids.size(), 1u);
  CHECK_EQ(hit.block_ids[0], a0);

  // Touching the free cached a0 takes it out of the free pool.
  KvBlocks d;
  CHECK(!bm.can_allocate(d, hit, 3));  // a0 + 1 new, but a0 is the only free block
  bm.free(c);                           // a1, its hash evicted, returns uncached
  CHECK(bm.can_allocate(d, hit, 3));
  bm.allocate(d, hit, 3);
  CHECK_EQ(d.block_ids[0], a0);
  CHECK_EQ(d.block_ids[1], a1);
  CHECK_EQ(bm.ref_count(a0), 1);
  CHECK_EQ(bm.num_cached_blocks(), 0);
}

TEST(can_allocate_counts_free_prefix_blocks_as_taken) {
  BlockManager bm(3, 2);
  std::vector<int32_t> t = {1, 2, 3, 4, 5};
  KvBlocks a;
  bm.allocate(a, {}, 5);
  bm.cache_full_blocks(a, t, 5);
  bm.free(a);  // 2 cached + 1 uncached free
  CachedPrefix hit = bm.find_cached_prefix(t);
  CHECK_EQ(hit.block_ids.size(), 2u);
  KvBlocks b;
  CHECK(bm.can_allocate(b, hit, 6));    // 2 hits + 1 new
  CHECK(!bm.can_allocate(b, hit, 7));   // 2 hits + 2 new > 3
}

TEST(sliding_window_releases_blocks_behind) {
  BlockManager bm(32, 4, /*sliding_window=*/6);
  std::vector<int32_t> tokens = iota_tokens(20);
  KvBlocks kv;
  bm.allocate(kv, {}, 20);
  bm.cache_full_blocks(kv, tokens, 20);
  // Next query at 20 sees keys 15..20: blocks 0..2 (positions 0..11) are dead, block 3 (12..15) is not.
  const int32_t b0 = kv.block_ids[0];
  bm.release_outside_window(kv, 20);
  CHECK_EQ(kv.block_ids[0], -1);
  CHECK_EQ(kv.block_ids[1], -1);
  CHECK_EQ(kv.block_ids[2], -1);
  CHECK(kv.block_ids[3] >= 0);
  CHECK_EQ(bm.num_released_window(), 3);
  CHECK_EQ(bm.num_used_blocks(), 2);
  CHECK_EQ(bm.ref_count(b0), 0);
  CHECK_EQ(bm.num_cached_blocks(), 3);  // hashed, so still reusable
  bm.release_outside_window(kv, 20);    // idempotent
  CHECK_EQ(bm.num_released_window(), 3);
  // Query at 21 sees 16..21: block 3's last position 15 < 16.
  bm.release_outside_window(kv, 21);
  CHECK_EQ(kv.block_ids[3], -1);
  CHECK_EQ(bm.num_released_window(), 4);
  // Hash chain continues past released blocks.
  tokens.push_back(500);
  tokens.push_back(501);
  tokens.push_back(502);
  tokens.push_back(503);
  bm.allocate(kv, {}, 24);
  bm.cache_full_blocks(kv, tokens, 24);
  CHECK_EQ(kv.block_hashes.size(), 6u);
  bm.free(kv);
  CHECK_EQ(bm.num_used_blocks(), 0);
}

TEST(prefix_hit_behind_the_window_is_never_held) {
  BlockManager bm(6, 4, /*sliding_window=*/4);
  std::vector<int32_t> tokens = iota_tokens(21);
  KvBlocks a;
  bm.allocate(a, {}, 20);
  bm.cache_full_blocks(a, tokens, 20);
  bm.free(a);  // 5 hashed blocks, all cached
  CHECK_EQ(bm.num_cached_blocks(), 5);
  CachedPrefix hit = bm.find_cached_prefix(tokens);
  CHECK_EQ(hit.block_ids.size(), 5u);
  // The first query (position 20) sees 17..20: blocks 0..3 are dead, block 4 and one new block
  // are needed. Only 2 of the 6 blocks, although the hit spans 5.
  KvBlocks b;
  CHECK(bm.can_allocate(b, hit, 21));
  bm.allocate(b, hit, 21);
  CHECK((b.block_ids == std::vector<int32_t>{-1, -1, -1, -1, hit.block_ids[4], b.block_ids[5]}));
  CHECK_EQ(bm.num_used_blocks(), 2);
  CHECK_EQ(bm.ref_count(hit.block_ids[0]), 0);
  CHECK_EQ(bm.num_cached_blocks(), 4);
  CHECK_EQ(b.num_released, 4);
  bm.free(b);
  CHECK_EQ(bm.num_used_blocks(), 0);
}

TEST(no_window_no_release) {
  BlockManager bm(8, 4);
  KvBlocks kv;
  bm.allocate(kv, {}, 20);
  bm.release_outside_window(kv, 20);
  CHECK_EQ(bm.num_released_window(), 0);
  for (int32_t b : kv.block_ids) CHECK(b >= 0);
}

TEST(prefix_caching_off_never_hits) {
  BlockManager bm(8, 4, 0, /*enable_prefix_caching=*/false);
  std::vector<int32_t> tokens = iota_tokens(9);
  KvBlocks kv;
  bm.allocate(kv, {}, 9);
  bm.cache_full_blocks(kv, tokens, 9);
  CHECK(kv.block_hashes.empty());
  bm.free(kv);
  CHECK_EQ(bm.num_cached_blocks(), 0);
  CHECK(bm.find_cached_prefix(tokens).block_ids.empty());
}

TEST(hash_depends_on_parent_and_tokens) {
  std::vector<int32_t> t = {1, 2, 3, 4};
  const uint64_t h = gyre::hash_block_tokens(0, t.data(), 4);
  CHECK(h != gyre::hash_block_tokens(1, t.data(), 4));
  std::vector<int32_t> u = {1, 2, 4, 3};
  CHECK(h != gyre::hash_block_tokens(0, u.data(), 4));
  CHECK_EQ(h, gyre::hash_block_tokens(0, t.data(), 4));
}

GYRE_TEST_MAIN
