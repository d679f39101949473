// The packed weights on transparent huge pages where the kernel offers them on request (THP
// "madvise" mode): decode streams every weight once per step, and with 4 KiB pages that is a
// TLB miss every 4 KiB. (Not the KV cache: there, zeroing fresh 2 MiB pages as sequences reach
// new blocks cost more than on 4 KiB pages; see CpuBackend::allocate_kv_cache.) Where madvise
// fails the buffer is simply on small pages.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace gyre {

constexpr size_t kHugePage = size_t{2} << 20;

// Allocates at least `bytes`, 2 MiB-aligned and advised for huge pages when it is that large.
inline void* huge_alloc(size_t bytes) {
  if (bytes < kHugePage) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, size);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE  // Linux
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}
inline void huge_free(void* p) { std::free(p); }

// For std::vector<T, HugePageAllocator<T>>.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(huge_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t) { huge_free(p); }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

template <typename T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace gyre
