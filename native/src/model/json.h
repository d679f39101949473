// A small JSON reader for config.json, safetensors headers and shard indexes. Numbers are kept as
// double plus the source text (so 64-bit offsets parse exactly).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gyre {

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // string value, or a number's source text
  std::vector<Json> array;
  std::map<std::string, Json> object;

  bool is_null() const { return kind == kNull; }
  const Json* find(const std::string& key) const;  // nullptr if absent or not an object
  bool is_integer() const;
  int64_t as_int64() const;  // exact for integral numbers written without exponent
};

// Throws gyre::Error("<what>: invalid JSON at offset N: ...").
Json parse_json(const char* data, size_t size, const std::string& what);

}  // namespace gyre
