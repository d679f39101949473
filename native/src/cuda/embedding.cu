#include "cuda/common.cuh"
#include "cuda/embedding.cuh"

namespace gyre {

template <typename T>
__global__ void embedding_gather_kernel(const int32_t* __restrict__ ids,  // [T]
                                        const T* __restrict__ table,      // [vocab, H]
                                        float* __restrict__ out,          // [T, H]
                                        int H) {
  const int t = blockIdx.x;
  const T* row = table + static_cast<int64_t>(ids[t]) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<int64_t>(t) * H + i] = to_float(row[i]);
}

template <typename T>
static void embedding_gather_cuda(const int32_t* ids, const T* table, float* out, int T_, int H, cudaStream_t stream) {
  launch(embedding_gather_kernel<T>, T_, 256, 0, stream, ids, table, out, H);
}

void embedding_gather(DType dt, const int32_t* ids, const void* table, float* out, int T, int H, cudaStream_t stream) {
  if (T == 0) return;
  GYRE_DISPATCH_HALF(dt, embedding_gather_cuda(ids, static_cast<const scalar_t*>(table), out, T, H, stream));
}

}  // namespace gyre
