// The paged KV cache's bookkeeping: fixed-size blocks, a free list, reference counts and the
// prefix cache. It knows blocks and hashes only; the scheduler decides who gets them.
//
//   sequence tokens:  | t0 .. t15 | t16 .. t31 | t32 .. t40 _ _ _ |     (block_size 16)
//   KvBlocks:         [    -1    ,     7      ,       3         ]     block_ids
//                         |           |              '- partial: never hashed
//                         |           '- full: hash(hash(block 0), t16..t31), shareable
//                         '- released behind a sliding window (its hash stays in the chain)
//   cache slot of token at position p:  block_ids[p / 16] * 16 + p % 16
//
// A full block is hashed as hash(parent hash, its token ids); a new sequence whose leading blocks
// hash the same reuses them (reference count + 1). A block whose count drops to 0 keeps its hash
// and stays reusable until it is evicted: uncached free blocks are handed out first, then cached
// ones, least recently freed first.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace gyre {

// One sequence's blocks: the small type the scheduler and the block manager share.
struct KvBlocks {
  std::vector<int32_t> block_ids;      // block i holds positions [i*block_size, (i+1)*block_size); -1: released
  std::vector<uint64_t> block_hashes;  // hash chain of the leading full, computed blocks
  int num_released = 0;                // leading entries released behind the sliding window
};

// Leading blocks of a sequence found in the prefix cache.
struct CachedPrefix {
  std::vector<int32_t> block_ids;
  std::vector<uint64_t> block_hashes;
  int num_query_tokens = 0;  // tokens the lookup was asked about
};

uint64_t hash_block_tokens(uint64_t parent_hash, const int32_t* token_ids, int num_tokens);

class BlockManager {
 public:
  // sliding_window: 0 for none, else keys each query sees (itself included).
  BlockManager(int num_blocks, int block_size, int sliding_window = 0, bool enable_prefix_caching = true);

  int block_size() const { return block_size_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int num_free_blocks() const { return static_cast<int>(free_uncached_.size() + free_cached_.size()); }
  int num_cached_blocks() const { return static_cast<int>(free_cached_.size()); }
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  int64_t num_released_window() const { return num_released_window_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  int64_t prefix_query_tokens() const { return prefix_query_tokens_; }
  int ref_count(int block_id) const { return blocks_[block_id].ref_count; }
  bool holds_hash(int block_id) const { return blocks_[block_id].has_hash; }
  int num_blocks_for(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // The longest run of cached leading full blocks of `tokens`, never covering the last token
  // (at least one token must be computed so the sequence has logits to sample from).
  CachedPrefix find_cached_prefix(const std::vector<int32_t>& tokens) const;

  // Room for the first num_tokens positions of a sequence that already holds `kv` (and, for a
  // new sequence, takes `prefix`)? allocate() must only follow a true can_allocate().
  bool can_allocate(const KvBlocks& kv, const CachedPrefix& prefix, int num_tokens) const;
  void allocate(KvBlocks& kv, const CachedPrefix& prefix, int num_tokens);

  // Hashes the blocks that the first num_computed_tokens of `tokens` fill completely.
  void cache_full_blocks(KvBlocks& kv, const std::vector<int32_t>& tokens, int num_computed_tokens);

  // Releases the blocks no query at position >= first_query_position can see.
  void release_outside_window(KvBlocks& kv, int first_query_position);

  void free(KvBlocks& kv);

 private:
  struct Block {
    int ref_count = 0;
    bool has_hash = false;  // registered in hash_to_block_
    uint64_t hash = 0;
    std::list<int32_t>::iterator lru_pos;  // valid while in free_cached_
  };

  // Leading blocks of a prefix hit that the new sequence's window never sees: taken as -1.
  int num_dead_prefix_blocks(const CachedPrefix& prefix) const;
  int32_t take_free_block();
  void touch(int32_t block_id);
  void release(int32_t block_id);

  int block_size_;
  int sliding_window_;
  bool enable_prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_uncached_;           // unreferenced, no hash
  std::list<int32_t> free_cached_;               // unreferenced with a hash, least recently freed first
  std::unordered_map<uint64_t, int32_t> hash_to_block_;
  int64_t num_released_window_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t prefix_query_tokens_ = 0;
};

}  // namespace gyre
