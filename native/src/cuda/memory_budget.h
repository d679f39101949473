// How much device memory the KV pool may take:
//   budget = GYRE_GPU_MEMORY_FRACTION (default 0.9) x total, capped by GYRE_GPU_MEMORY_BUDGET
//            (bytes; suffixes K, M, G, T as powers of 1024, e.g. "24G" emulates an A10G)
//   kv     = budget - (total - free) - margin
// `total - free` counts everything already on the device (this process's weights and
// activations, the CUDA context, other processes); the margin (256 MiB) is for buffers
// grown later (decode workspace, cuBLASLt workspace, larger batches).
#pragma once
#include <cstdint>
#include <string>

namespace gyre {

struct MemoryBudget {
  int64_t total = 0, free = 0, budget = 0, margin = 0, kv_bytes = 0;
  double fraction = 0.9;
  std::string describe() const;
};

// Reads the environment and cudaMemGetInfo. Throws gyre::Error for a malformed variable.
MemoryBudget read_memory_budget();
// Parses "25769803776", "24G", "24GiB", "512M". Returns -1 if malformed.
int64_t parse_bytes(const std::string& s);

}  // namespace gyre
