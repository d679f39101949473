// A read-only view of a tensor held elsewhere (an mmap'd safetensors file or an owned buffer).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gyre {

enum class DType { kF32, kF16, kBF16, kI64, kI32, kI8 };

const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  template <typename T>
  const T* as() const { return static_cast<const T*>(data); }
};

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace gyre
