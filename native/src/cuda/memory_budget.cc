#include "cuda/memory_budget.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "cuda/cuda_util.h"

namespace gyre {

constexpr int64_t kMarginBytes = 256LL << 20;

int64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v >= 0)) return -1;
  std::string unit(end);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mul = 1;
  if (unit == "K") mul = 1024.0;
  else if (unit == "M") mul = 1024.0 * 1024;
  else if (unit == "G") mul = 1024.0 * 1024 * 1024;
  else if (unit == "T") mul = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") return -1;
  return static_cast<int64_t>(std::llround(v * mul));
}

std::string MemoryBudget::describe() const {
  auto gib = [](int64_t b) { return std::to_string(static_cast<double>(b) / (1 << 30)).substr(0, 6) + " GiB"; };
  return "total " + gib(total) + ", free " + gib(free) + ", budget " + gib(budget) + " (fraction " +
         std::to_string(fraction).substr(0, 4) + "), left for KV " + gib(kv_bytes);
}

MemoryBudget read_memory_budget() {
  MemoryBudget m;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  m.total = static_cast<int64_t>(total_b);
  m.free = static_cast<int64_t>(free_b);
  if (const char* f = std::getenv("GYRE_GPU_MEMORY_FRACTION"); f && *f) {
    char* end = nullptr;
    m.fraction = std::strtod(f, &end);
    if (*end != '\0' || !(m.fraction > 0 && m.fraction <= 1))
      throw Error(std::string("GYRE_GPU_MEMORY_FRACTION: '") + f + "' must be a number in (0, 1]");
  }
  m.budget = static_cast<int64_t>(m.fraction * static_cast<double>(m.total));
  if (const char* b = std::getenv("GYRE_GPU_MEMORY_BUDGET"); b && *b) {
    const int64_t cap = parse_bytes(b);
    if (cap <= 0) throw Error(std::string("GYRE_GPU_MEMORY_BUDGET: '") + b + "' must be a size in bytes, e.g. 24G");
    m.budget = std::min(m.budget, cap);
  }
  m.margin = kMarginBytes;
  m.kv_bytes = m.budget - (m.total - m.free) - m.margin;
  return m;
}

}  // namespace gyre
