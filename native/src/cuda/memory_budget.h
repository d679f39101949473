// The device's side of the memory budget (gyre/gpu_memory.h has the arithmetic): cudaMemGetInfo's
// total and free, where `total - free` counts everything already on the device (this process's
// weights and step buffers, the CUDA context, other processes).
#pragma once
#include "gyre/gpu_memory.h"

namespace gyre {

// Throws gyre::Error for options out of range.
MemoryBudget read_memory_budget(const GpuMemoryOptions& options);

}  // namespace gyre
