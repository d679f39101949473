// Rotary tables: cos/sin of each position's angles, computed on the host in Hugging Face's
// float32 arithmetic. Both backends rotate with these rows, so they rotate identically, rope
// scaling (linear, dynamic NTK) included.
#pragma once
#include <cstdint>
#include <vector>

#include "gyre/config.h"

namespace gyre {

// cos/sin for a set of positions: [T, head_dim/2].
struct RopeTable {
  std::vector<float> inv_freq;  // [head_dim/2]
  std::vector<float> cos, sin;  // [T, head_dim/2]
  void init(const ModelConfig& c);
  void compute(const ModelConfig& c, const int32_t* positions, int T);
};

}  // namespace gyre
