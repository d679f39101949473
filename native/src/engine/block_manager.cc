#include "engine/block_manager.h"

#include <algorithm>
#include <stdexcept>

namespace gyre {

namespace {

constexpr uint64_t kRootHash = 0x6a09e667f3bcc908ULL;  // parent hash of a sequence's first block

uint64_t mix64(uint64_t x) {  // splitmix64 finalizer: every input bit affects every output bit
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t hash_block_tokens(uint64_t parent_hash, const int32_t* token_ids, int num_tokens) {
  uint64_t h = mix64(parent_hash + 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < num_tokens; ++i) h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(token_ids[i])) + 0x9e3779b97f4a7c15ULL * (i + 1)));
  return mix64(h ^ static_cast<uint64_t>(num_tokens));
}

BlockManager::BlockManager(int num_blocks, int block_size, int sliding_window, bool enable_prefix_caching)
    : block_size_(block_size), sliding_window_(sliding_window), enable_prefix_caching_(enable_prefix_caching),
      blocks_(num_blocks) {
  if (num_blocks <= 0 || block_size <= 0) throw std::invalid_argument("BlockManager: num_blocks and block_size must be > 0");
  // Handed out from the back: block 0 first.
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_uncached_.push_back(b);
}

CachedPrefix BlockManager::find_cached_prefix(const std::vector<int32_t>& tokens) const {
  CachedPrefix prefix;
  prefix.num_query_tokens = static_cast<int>(tokens.size());
  if (!enable_prefix_caching_ || tokens.empty()) return prefix;
  const int max_blocks = (static_cast<int>(tokens.size()) - 1) / block_size_;
  uint64_t parent = kRootHash;
  for (int i = 0; i < max_blocks; ++i) {
    uint64_t h = hash_block_tokens(parent, tokens.data() + i * block_size_, block_size_);
    auto it = hash_to_block_.find(h);
    if (it == hash_to_block_.end()) break;
    prefix.block_ids.push_back(it->second);
    prefix.block_hashes.push_back(h);
    parent = h;
  }
  return prefix;
}

int BlockManager::num_dead_prefix_blocks(const CachedPrefix& prefix) const {
  if (sliding_window_ <= 0) return 0;
  const int num_blocks = static_cast<int>(prefix.block_ids.size());
  const int first_key = num_blocks * block_size_ - sliding_window_ + 1;  // of the first query after it
  return std::min(std::max(0, first_key) / block_size_, num_blocks);
}

bool BlockManager::can_allocate(const KvBlocks& kv, const CachedPrefix& prefix, int num_tokens) const {
  const int num_held = static_cast<int>(kv.block_ids.size() + prefix.block_ids.size());
  const int num_new = std::max(0, num_blocks_for(num_tokens) - num_held);
  // Touching a cached prefix block that is free takes it out of the free pool.
  int num_prefix_free = 0;
  for (size_t i = num_dead_prefix_blocks(prefix); i < prefix.block_ids.size(); ++i)
    num_prefix_free += blocks_[prefix.block_ids[i]].ref_count == 0;
  return num_new <= num_free_blocks() - num_prefix_free;
}

void BlockManager::allocate(KvBlocks& kv, const CachedPrefix& prefix, int num_tokens) {
  if (kv.block_ids.empty()) {  // a sequence's first allocation
    kv.block_ids = prefix.block_ids;
    kv.block_hashes = prefix.block_hashes;
    kv.num_released = num_dead_prefix_blocks(prefix);
    for (int i = 0; i < kv.num_released; ++i) kv.block_ids[i] = -1;  // behind the window: never held
    for (size_t i = kv.num_released; i < kv.block_ids.size(); ++i) touch(kv.block_ids[i]);
    prefix_query_tokens_ += prefix.num_query_tokens;
    prefix_hit_tokens_ += static_cast<int64_t>(prefix.block_ids.size()) * block_size_;
  } else if (!prefix.block_ids.empty()) {
    throw std::logic_error("BlockManager: a cached prefix is for a new sequence only");
  }
  while (static_cast<int>(kv.block_ids.size()) < num_blocks_for(num_tokens)) kv.block_ids.push_back(take_free_block());
}

void BlockManager::cache_full_blocks(KvBlocks& kv, const std::vector<int32_t>& tokens, int num_computed_tokens) {
  if (!enable_prefix_caching_) return;
  const int num_full = std::min(num_computed_tokens / block_size_, static_cast<int>(kv.block_ids.size()));
  for (int i = static_cast<int>(kv.block_hashes.size()); i < num_full; ++i) {
    const uint64_t parent = i == 0 ? kRootHash : kv.block_hashes[i - 1];
    const uint64_t h = hash_block_tokens(parent, tokens.data() + i * block_size_, block_size_);
    kv.block_hashes.push_back(h);
    const int32_t b = kv.block_ids[i];
    // A block computed twice (two sequences at once) is registered once; the copy stays uncached.
    if (b < 0 || blocks_[b].has_hash || hash_to_block_.count(h)) continue;
    hash_to_block_.emplace(h, b);
    blocks_[b].has_hash = true;
    blocks_[b].hash = h;
  }
}

void BlockManager::release_outside_window(KvBlocks& kv, int first_query_position) {
  if (sliding_window_ <= 0) return;
  // A query at p sees keys p-W+1..p: block i is dead once its last position (i+1)*bs-1 < p-W+1.
  const int first_key = first_query_position - sliding_window_ + 1;
  const int num_dead = std::min(std::max(0, first_key) / block_size_, static_cast<int>(kv.block_ids.size()));
  for (int i = kv.num_released; i < num_dead; ++i) {
    if (kv.block_ids[i] >= 0) {
      release(kv.block_ids[i]);
      kv.block_ids[i] = -1;
      ++num_released_window_;
    }
  }
  kv.num_released = std::max(kv.num_released, num_dead);
}

void BlockManager::free(KvBlocks& kv) {
  // Tail first: the head of a prefix is freed last, so it is evicted last.
  for (auto it = kv.block_ids.rbegin(); it != kv.block_ids.rend(); ++it)
    if (*it >= 0) release(*it);
  kv = KvBlocks{};
}

int32_t BlockManager::take_free_block() {
  int32_t b;
  if (!free_uncached_.empty()) {
    b = free_uncached_.back();
    free_uncached_.pop_back();
  } else if (!free_cached_.empty()) {
    b = free_cached_.front();  // evict the least recently freed cached block
    free_cached_.pop_front();
    Block& block = blocks_[b];
    hash_to_block_.erase(block.hash);
    block.has_hash = false;
  } else {
    throw std::logic_error("BlockManager: allocate() without can_allocate()");
  }
  blocks_[b].ref_count = 1;
  return b;
}

void BlockManager::touch(int32_t block_id) {
  Block& block = blocks_[block_id];
  if (block.ref_count++ == 0) free_cached_.erase(block.lru_pos);
}

void BlockManager::release(int32_t block_id) {
  Block& block = blocks_[block_id];
  if (--block.ref_count > 0) return;
  if (block.has_hash) {
    block.lru_pos = free_cached_.insert(free_cached_.end(), block_id);
  } else {
    free_uncached_.push_back(block_id);
  }
}

}  // namespace gyre
