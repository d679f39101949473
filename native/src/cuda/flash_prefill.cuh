// Flash prefill attention on tensor cores (FlashAttention-2 style) for head dims 64 and 128.
//
// A block of 4 warps owns 64 rows of one KV head: query tokens [first, first + count) of one
// sequence times the G = nh / nkv query heads that share that KV head, row r = token r / G,
// head r % G (so one K/V tile serves the whole GQA group). It walks the keys the tile can see
// 64 at a time straight from the paged cache (earlier chunks and prefix hits included),
// S = Q K^T and O += P V with mma.sync m16n8k16 and float32 accumulation, an online softmax in
// float32, causal and sliding-window masks per (row, key). Each warp owns 16 rows; Q stays in
// registers. K and V have one shared buffer each, loaded by cp.async so that V(j) arrives while
// S(j) is computed and K(j+1) while O += P V(j) is: two barriers per tile.
//
//   shared: K [64][D + 8], V [64][D + 8] (Q is staged in V's buffer), key flags [64]
//
// Keys past the tile's last position or in released (-1) blocks load as zeros and are masked.
#pragma once
#include <cuda_runtime.h>

#include "cuda/prefill_attention.cuh"

namespace gyre {

constexpr int kFlashRows = 64;  // (token, head) rows per block

// Whether the flash kernel serves this shape; else prefill_attention (16-token tiles) does.
inline bool flash_prefill_supported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && group >= 1 && group <= kFlashRows;
}
// Query tokens per flash tile: every head of the group, for as many tokens as fit 64 rows.
inline int flash_prefill_tile_tokens(int group) { return kFlashRows / group; }

// q: [T, nh, d] in `dt`; positions: [T]; tiles: [n] (device), count <= flash_prefill_tile_tokens;
// out: [T, nh, d] in `dt` (the tiles' rows written). Grid (n, nkv).
void flash_prefill_attention(DType dt, const PagedKv& kv, const void* q, const int32_t* positions,
                             const PrefillTile* tiles, int n, void* out, cudaStream_t stream);

}  // namespace gyre
