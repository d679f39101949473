#include "cuda/activation.cuh"
#include "cuda/common.cuh"

namespace gyre {

template <typename T>
__global__ void silu_and_mul_kernel(const float* __restrict__ gate_up,  // [T, 2 * I]
                                    T* __restrict__ out,                // [T, I]
                                    int I) {
  const int t = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= I) return;
  const float g = gate_up[static_cast<int64_t>(t) * 2 * I + i];
  const float u = gate_up[static_cast<int64_t>(t) * 2 * I + I + i];
  out[static_cast<int64_t>(t) * I + i] = from_float<T>((g / (1.0f + expf(-g))) * u);  // as the CPU: g / (1 + e^-g)
}

template <typename T>
static void silu_and_mul_cuda(const float* gate_up, T* out, int T_, int I, cudaStream_t stream) {
  dim3 grid((I + 255) / 256, T_);
  launch(silu_and_mul_kernel<T>, grid, 256, 0, stream, gate_up, out, I);
}

void silu_and_mul(DType dt, const float* gate_up, void* out, int T, int I, cudaStream_t stream) {
  if (T == 0) return;
  GYRE_DISPATCH_HALF(dt, silu_and_mul_cuda(gate_up, static_cast<scalar_t*>(out), T, I, stream));
}

}  // namespace gyre
