#ifdef GYRE_HAVE_CUDA
#include "run.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>

#include "device.h"
#include "gyre/gpu_memory.h"
#include "model.h"
#include "phases.h"
#include "report.h"
#include "workload.h"

namespace gyre_bench {

int run(const Options& o, const std::vector<TraceEntry>& trace, const std::string& trace_source) {
  Bench b(o);
  b.root.set("tool", "gyre_bench");
  if (!o.label.empty()) b.root.set("label", o.label);
#ifdef GYRE_HAVE_CUBLASLT
  const char* gemm = "cublaslt";
#else
  const char* gemm = "mma";
#endif
  b.root.set("gemm", gemm);

  int ndev = 0;
  const cudaError_t de = cudaGetDeviceCount(&ndev);
  if (de != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "gyre_bench: no CUDA device is available (%s); this tool measures a GPU and needs one\n",
                 de != cudaSuccess ? cudaGetErrorString(de) : "0 devices");
    b.root.set("error", "no CUDA device");
    b.write();
    return 2;
  }
  b.root.set("gpu", gpu_info());
  // Every backend and engine of this run gets --gpu-memory-budget; the kv phase its own --kv-budget.
  GpuMemoryOptions gpu_memory;
  gpu_memory.budget = o.gpu_memory_budget.empty() ? 0 : parse_bytes(o.gpu_memory_budget);
  if (gpu_memory.budget > 0) b.root.set("gpu_memory_budget", gpu_memory.budget);
  const int64_t kv_budget = o.kv_budget.empty() ? kA10gBudgetBytes : parse_bytes(o.kv_budget);

  const Model m = make_model(o);
  b.root.set("model", model_json(o, m));
  b.save();
  std::printf("gyre_bench: %s%s, %d layers, %s GEMM, GPU %s\n", o.shape.c_str(), o.quantization == "int8" ? " int8" : "",
              m.cfg.num_layers, gemm, gpu_name().c_str());
  std::fflush(stdout);

  double bw = NAN;  // GB/s, read + write
  if (b.has("bandwidth")) {
    try {
      b.phases.set("bandwidth", measure_bandwidth(size_t(1) << 30, 15, bw));
      std::printf("copy bandwidth: %.0f GB/s (device-to-device, read + write)\n", bw);
    } catch (const std::exception& e) {
      b.fail("bandwidth", e.what());
    }
    b.save();
  }
  bench_backend(b, m, bw, gpu_memory, kv_budget);
  bench_workload(b, m, trace, trace_source, gpu_memory);
  b.root.set("ok", Json::boolean(b.failures == 0));
  b.save();
  std::printf("gyre_bench: done in %.1f s, %d failure(s)%s%s\n", seconds_since(b.start), b.failures,
              o.json_path.empty() ? "" : "; JSON: ", o.json_path.c_str());
  return b.failures == 0 ? 0 : 1;
}

}  // namespace gyre_bench
#endif  // GYRE_HAVE_CUDA
