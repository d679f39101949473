#include "cuda/common.cuh"
#include "cuda/norm.cuh"

namespace gyre {

// One block per output row. The row (H <= 8192 floats) is kept in shared memory between the
// sum of squares and the scaling pass.
template <typename T>
__global__ void add_rms_norm_kernel(float* __restrict__ h,             // [T, H]
                                    const float* __restrict__ delta,   // [T, H] or null
                                    const float* __restrict__ w,       // [H]
                                    const int32_t* __restrict__ rows,  // [R] or null
                                    T* __restrict__ out,               // [R, H]
                                    int H, float eps) {
  GYRE_DYNAMIC_SMEM(float, row);  // [H]
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const int64_t src = rows ? rows[r] : r;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float x = h[src * H + i];
    if (delta) x += delta[src * H + i];
    if (delta && !rows) h[src * H + i] = x;
    row[i] = x;
    ss = fmaf(x, x, ss);
  }
  ss = block_reduce_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(H) + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x)
    out[static_cast<int64_t>(r) * H + i] = from_float<T>(w[i] * (row[i] * inv));
}

template <typename T>
static void add_rms_norm_cuda(float* h, const float* delta, const float* w, const int32_t* rows, T* out, int R, int H,
                              float eps, cudaStream_t stream) {
  const size_t smem = sizeof(float) * H;
  if (smem > 48 * 1024) throw Error("add_rms_norm: hidden size " + std::to_string(H) + " exceeds 12288");
  launch(add_rms_norm_kernel<T>, R, 256, smem, stream, h, delta, w, rows, out, H, eps);
}

void add_rms_norm(DType dt, float* h, const float* delta, const float* w, const int32_t* rows, void* out, int R, int H,
                  float eps, cudaStream_t stream) {
  if (R == 0) return;
  GYRE_DISPATCH_HALF(dt, add_rms_norm_cuda(h, delta, w, rows, static_cast<scalar_t*>(out), R, H, eps, stream));
}

}  // namespace gyre
