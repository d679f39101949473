// The whole benchmark on the GPU: the report's header (tool, GEMM, GPU, model), then each phase
// of --phases in order. CUDA builds only.
#pragma once
#include <string>
#include <vector>

#include "options.h"
#include "trace.h"

namespace gyre_bench {

// 0 when every phase ran without failure, 1 otherwise, 2 without a CUDA device.
int run(const Options& o, const std::vector<TraceEntry>& trace, const std::string& trace_source);

}  // namespace gyre_bench
