// Safetensors files read through mmap. The header is parsed and checked (dtype, shape, offsets
// within the file) at open; tensor data is never copied.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gyre/tensor.h"

namespace gyre {

class SafetensorsFile {
 public:
  // Throws gyre::Error naming the path for a missing, truncated or malformed file.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;  // throws if absent
  std::vector<std::string> names() const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> unsupported_;  // name -> dtype we cannot read
};

// Writes float32 / int64 tensors to a safetensors file (used by tools and tests).
struct NamedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace gyre
