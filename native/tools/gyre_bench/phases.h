// The phases on one backend (main.cc describes them): prefill, decode and kv. Each records its
// rows into the report as it goes and its failure without stopping the run.
#pragma once
#include <cstdint>

#include "gyre/gpu_memory.h"
#include "model.h"
#include "report.h"

namespace gyre_bench {

// bandwidth_gbps: the measured copy bandwidth (NaN if not measured), for decode's floor.
void bench_backend(Bench& b, const Model& m, double bandwidth_gbps, const GpuMemoryOptions& gpu_memory,
                   int64_t kv_budget);

}  // namespace gyre_bench
