// Linear layers on the CPU: y[t, o] = sum_k x[t, k] * W[o, k], with W in its storage dtype
// (f32, f16 or bf16) converted on the fly and float32 accumulation.
//
// Batch invariance: each output is one 8-lane FMA chain over k (ascending), then a fixed
// horizontal sum, then the scalar tail. Tiles only decide how many outputs are computed side
// by side, never the order inside one, so a row's result does not depend on the batch.
#pragma once
#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// x: [T, K] (row stride ldx); W: [O, K] row-major; y: [T, ldy], columns [o_begin, o_end) written.
void linear_rows(const float* x, int T, int K, int ldx, const void* w, DType w_dtype, int64_t o_begin,
                 int64_t o_end, float* y, int ldy);

// Converts row `row` of a [rows, K] matrix of any float dtype to float32.
void load_row_f32(const TensorView& m, int64_t row, float* out);

}  // namespace gyre
