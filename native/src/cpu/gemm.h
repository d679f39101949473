// Linear layers on the CPU: y[t, o] = sum_k x[t, k] * W[o, k], float32 accumulation over
// weights kept in their storage dtype (f32, f16 or bf16) and converted on the fly. INT8
// weights (W = q * scale[o]) are converted to float in registers and summed exactly like
// float weights; the row's scale multiplies the finished sum: y = scale[o] * sum_k x * q.
//
// The weights are repacked once into panels of 16 outputs, k-major, so a micro-kernel keeps
// a tile of tokens x 16 outputs in registers and broadcasts x[t, k]:
//
//   W [O, K] row-major  ->  panels [ceil(O/16)][K][16]   (the last panel zero-padded)
//
// Batch invariance: every output is one sequential FMA chain over k = 0..K-1, whatever the
// tile, batch size or thread, so a row's result never depends on what else is in the batch.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/huge_pages.h"
#include "gyre/tensor.h"

namespace gyre {

class PackedLinear {
 public:
  static constexpr int kPanel = 16;
  PackedLinear() = default;
  // Packs the rows of one or more [O_i, K] matrices, stacked along O (e.g. q, k and v).
  // I8 parts need their F32 [O_i] scales, in the same order.
  explicit PackedLinear(const std::vector<const TensorView*>& parts,
                        const std::vector<const TensorView*>& scales = {});

  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  int64_t num_panels() const { return (out_ + kPanel - 1) / kPanel; }
  // x: [T, in] (row stride ldx); y: [T, ldy], columns of panels [p_begin, p_end) written.
  void run(const float* x, int T, int ldx, float* y, int ldy, int64_t p_begin, int64_t p_end) const;

 private:
  DType dtype_ = DType::kF32;
  int64_t out_ = 0, in_ = 0;
  HugeVector<uint16_t> half_;  // f16/bf16 panels
  HugeVector<float> full_;     // f32 panels
  HugeVector<int8_t> i8_;      // I8 panels
  std::vector<float> scale_;    // I8: [panels * 16] (padding 0)
};

// Converts row `row` of a [rows, K] matrix of any float dtype to float32.
void load_row_f32(const TensorView& m, int64_t row, float* out);

}  // namespace gyre
