#include "cuda/common.cuh"
#include "cuda/rope.cuh"

namespace gyre {

// One block per token; thread i handles one (head, pair) of q and k, or one (head, dim) of v.
template <typename T>
__global__ void rope_and_cache_kernel(const float* __restrict__ qkv,     // [T, (nh + 2 nkv) * d]
                                      const float* __restrict__ cos,     // [T, d / 2]
                                      const float* __restrict__ sin,     // [T, d / 2]
                                      const int64_t* __restrict__ slots, // [T]
                                      T* __restrict__ q_out,             // [T, nh * d]
                                      T* __restrict__ k_cache,           // [slots, nkv, d]
                                      T* __restrict__ v_cache,           // [slots, nkv, d]
                                      int nh, int nkv, int d) {
  const int t = blockIdx.x, half = d / 2;
  const int qo = nh * d, kvo = nkv * d;
  const float* row = qkv + static_cast<int64_t>(t) * (qo + 2 * kvo);
  const float* c = cos + static_cast<int64_t>(t) * half;
  const float* s = sin + static_cast<int64_t>(t) * half;
  const int64_t slot = slots[t];
  const int pairs = (nh + nkv) * half;
  for (int i = threadIdx.x; i < pairs + kvo; i += blockDim.x) {
    if (i < pairs) {
      const int head = i / half, j = i % half;
      const float a = row[head * d + j], b = row[head * d + j + half];
      // The CPU's order: a*cos - b*sin, b*cos + a*sin, each product rounded (no fma).
      const float x0 = __fsub_rn(__fmul_rn(a, c[j]), __fmul_rn(b, s[j]));
      const float x1 = __fadd_rn(__fmul_rn(b, c[j]), __fmul_rn(a, s[j]));
      if (head < nh) {
        T* q = q_out + static_cast<int64_t>(t) * qo + head * d;
        q[j] = from_float<T>(x0);
        q[j + half] = from_float<T>(x1);
      } else if (slot >= 0) {
        T* k = k_cache + slot * kvo + (head - nh) * d;
        k[j] = from_float<T>(x0);
        k[j + half] = from_float<T>(x1);
      }
    } else if (slot >= 0) {
      const int v = i - pairs;
      v_cache[slot * kvo + v] = from_float<T>(row[qo + kvo + v]);
    }
  }
}

template <typename T>
static void rope_and_cache_cuda(const float* qkv, const float* cos, const float* sin, const int64_t* slots, T* q_out,
                                T* k_cache, T* v_cache, int T_, int nh, int nkv, int d, cudaStream_t stream) {
  launch(rope_and_cache_kernel<T>, T_, 256, 0, stream, qkv, cos, sin, slots, q_out, k_cache, v_cache, nh, nkv, d);
}

void rope_and_cache(DType dt, const float* qkv, const float* cos, const float* sin, const int64_t* slots, void* q_out,
                    void* k_cache, void* v_cache, int T, int num_heads, int num_kv_heads, int head_dim,
                    cudaStream_t stream) {
  if (T == 0) return;
  GYRE_DISPATCH_HALF(dt, rope_and_cache_cuda(qkv, cos, sin, slots, static_cast<scalar_t*>(q_out),
                                             static_cast<scalar_t*>(k_cache), static_cast<scalar_t*>(v_cache), T,
                                             num_heads, num_kv_heads, head_dim, stream));
}

}  // namespace gyre
