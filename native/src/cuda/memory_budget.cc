#include "cuda/memory_budget.h"

#include "cuda/cuda_util.h"

namespace gyre {

MemoryBudget read_memory_budget(const GpuMemoryOptions& options) {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return memory_budget(static_cast<int64_t>(total_b), static_cast<int64_t>(free_b), options);
}

}  // namespace gyre
