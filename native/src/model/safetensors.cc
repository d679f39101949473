// Safetensors through mmap: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}}, then the data. Every offset is checked
// against the file's size at open, so a truncated file is refused before any tensor is read.
#include "gyre/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "gyre/error.h"
#include "model/json.h"
#include "model/model_file.h"

namespace gyre {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI8: return "I8";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kI64: return 8;
    case DType::kI8: return 1;
  }
  return 0;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

static bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::kF32;
  else if (s == "F16") *out = DType::kF16;
  else if (s == "BF16") *out = DType::kBF16;
  else if (s == "I64") *out = DType::kI64;
  else if (s == "I32") *out = DType::kI32;
  else if (s == "I8") *out = DType::kI8;
  else return false;
  return true;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // Non-blocking, and only a regular file: a FIFO or device at this path must not hang us.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) { ::close(fd); throw Error(path + ": cannot stat"); }
  if (!S_ISREG(st.st_mode)) { ::close(fd); throw Error(path + ": not a regular file"); }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ < 8) { ::close(fd); throw Error(path + ": truncated: " + std::to_string(map_size_) + " bytes, no header"); }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) { map_ = nullptr; throw Error(path + ": mmap failed"); }

  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    // The length is the file's first 8 bytes: never quoted (they may be any file's bytes).
    if (header_len > map_size_ - 8 || header_len > kMaxHeaderBytes)
      throw Error(path + ": truncated or not safetensors: the header length in its first 8 bytes exceeds the file's " +
                  std::to_string(map_size_) + " bytes (or the " + std::to_string(kMaxHeaderBytes) + "-byte header limit)");
    Json header = parse_json(reinterpret_cast<const char*>(bytes + 8), header_len, path + " header");
    if (header.kind != Json::kObject) throw Error(path + ": header is not a JSON object");
    if (header.object.size() > kMaxTensorsPerFile + 1)
      throw Error(path + ": header lists " + std::to_string(header.object.size()) + " tensors (at most " +
                  std::to_string(kMaxTensorsPerFile) + ")");
    const uint8_t* data = bytes + 8 + header_len;
    const uint64_t data_size = map_size_ - 8 - header_len;
    for (const auto& [name, info] : header.object) {
      if (name == "__metadata__") continue;
      const Json* dt = info.find("dtype");
      const Json* shape = info.find("shape");
      const Json* offs = info.find("data_offsets");
      if (!dt || dt->kind != Json::kString || !shape || shape->kind != Json::kArray || !offs ||
          offs->kind != Json::kArray || offs->array.size() != 2)
        throw Error(path + ": tensor '" + name + "': header entry needs dtype, shape and data_offsets");
      TensorView t;
      if (!parse_dtype(dt->text, &t.dtype)) {
        unsupported_[name] = dt->text;
        continue;
      }
      // Every number a non-negative integer of at most 2^62, and the element count and byte
      // size computed with overflow checks: [2^62, 4] of F32 must not wrap to 0 bytes.
      auto bounded = [](const Json& v) { return v.is_integer() && v.text[0] != '-' && v.text.size() <= 19; };
      if (shape->array.size() > kMaxDims)
        throw Error(path + ": tensor '" + name + "': shape has " + std::to_string(shape->array.size()) +
                    " dimensions (at most " + std::to_string(kMaxDims) + ")");
      int64_t numel = 1, want_bytes = 0;
      for (const Json& s : shape->array) {
        if (!bounded(s) || !checked_mul(numel, s.as_int64(), &numel))
          throw Error(path + ": tensor '" + name + "': shape must hold non-negative integers whose product is at most 2^62");
        t.shape.push_back(s.as_int64());
      }
      if (!checked_mul(numel, static_cast<int64_t>(dtype_size(t.dtype)), &want_bytes))
        throw Error(path + ": tensor '" + name + "': shape " + shape_str(t.shape) + " is too large");
      if (!bounded(offs->array[0]) || !bounded(offs->array[1]))
        throw Error(path + ": tensor '" + name + "': data_offsets must be two non-negative integers");
      uint64_t begin = offs->array[0].as_int64(), end = offs->array[1].as_int64();
      if (end < begin)
        throw Error(path + ": tensor '" + name + "': data_offsets end before they begin");
      if (end > data_size)
        throw Error(path + ": truncated: tensor '" + name + "' ends at byte " + std::to_string(end) +
                    " of the data section but the file holds only " + std::to_string(data_size));
      t.nbytes = end - begin;
      if (t.nbytes != static_cast<uint64_t>(want_bytes))
        throw Error(path + ": tensor '" + name + "': " + std::to_string(t.nbytes) + " bytes do not match shape " +
                    shape_str(t.shape) + " of " + dtype_name(t.dtype));
      t.data = data + begin;
      tensors_[name] = t;
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  auto bad = unsupported_.find(name);
  if (bad != unsupported_.end())
    throw Error(path_ + ": tensor '" + name + "' has dtype " + bad->second + ", which is not supported (F32, F16, BF16)");
  throw Error(path_ + ": tensor '" + name + "' is missing");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  for (const auto& kv : unsupported_) out.push_back(kv.first);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    int64_t n = 1;
    for (auto s : t.shape) n *= s;
    uint64_t bytes = static_cast<uint64_t>(n) * dtype_size(t.dtype);
    header += (i ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"" + dtype_name(t.dtype) +
              "\",\"shape\":" + shape_str(t.shape) + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while ((header.size() + 8) % 8 != 0) header += ' ';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot write");
  uint64_t len = header.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
  out.write(len_bytes, 8);
  out.write(header.data(), header.size());
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (auto s : t.shape) n *= s;
    out.write(static_cast<const char*>(t.data), n * dtype_size(t.dtype));
  }
  if (!out) throw Error(path + ": write failed");
}

}  // namespace gyre
