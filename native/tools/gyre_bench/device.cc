#ifdef GYRE_HAVE_CUDA
#include "device.h"

#include <cuda_runtime.h>

#include <vector>

#include "gyre/error.h"

namespace gyre_bench {

#define BENCH_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) throw Error(std::string(#call) + ": " + cudaGetErrorString(e_));    \
  } while (0)

Json gpu_info() {
  Json g = Json::obj();
  int dev = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  BENCH_CUDA(cudaGetDeviceProperties(&p, dev));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  g.set("name", std::string(p.name));
  g.set("compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor));
  g.set("multiprocessors", p.multiProcessorCount);
  g.set("memory_bytes", static_cast<int64_t>(p.totalGlobalMem));
  g.set("memory_free_bytes_at_start", static_cast<int64_t>(free_b));
  g.set("l2_bytes", p.l2CacheSize);
  g.set("cuda_driver", driver);
  g.set("cuda_runtime", runtime);
  return g;
}

std::string gpu_name() {
  cudaDeviceProp p{};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "?";
  return p.name;
}

Json measure_bandwidth(size_t bytes, int reps, double& gbps_out) {
  void *src = nullptr, *dst = nullptr;
  cudaStream_t s = nullptr;
  cudaEvent_t a = nullptr, b = nullptr;
  Json j = Json::obj();
  auto cleanup = [&] {
    if (src) cudaFree(src);
    if (dst) cudaFree(dst);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    if (s) cudaStreamDestroy(s);
  };
  try {
    BENCH_CUDA(cudaMalloc(&src, bytes));
    BENCH_CUDA(cudaMalloc(&dst, bytes));
    BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    BENCH_CUDA(cudaEventCreate(&a));
    BENCH_CUDA(cudaEventCreate(&b));
    BENCH_CUDA(cudaMemsetAsync(src, 0x5A, bytes, s));
    BENCH_CUDA(cudaMemsetAsync(dst, 0x00, bytes, s));
    std::vector<double> ms;
    for (int i = 0; i < reps + 3; ++i) {
      BENCH_CUDA(cudaEventRecord(a, s));
      BENCH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
      BENCH_CUDA(cudaEventRecord(b, s));
      BENCH_CUDA(cudaEventSynchronize(b));
      float t = 0;
      BENCH_CUDA(cudaEventElapsedTime(&t, a, b));
      if (i >= 3) ms.push_back(t);
    }
    const double med = median(ms);
    gbps_out = 2.0 * static_cast<double>(bytes) / (med * 1e-3) / 1e9;
    j.set("bytes", static_cast<int64_t>(bytes));
    j.set("reps", reps);
    j.set("median_ms", med);
    j.set("min_ms", *std::min_element(ms.begin(), ms.end()));
    j.set("GBps", gbps_out);
    j.set("counts", "bytes read + bytes written (2 x buffer) per copy");
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  return j;
}

}  // namespace gyre_bench
#endif  // GYRE_HAVE_CUDA
