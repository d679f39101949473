// A JSON value for writing (json.h reads): objects keep their keys in insertion order, so reports
// read in the order they were built. The one writer of the native code (gyre_bench's reports,
// the shape table's export).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gyre {

class OrderedJson {
 public:
  enum Kind { kNull, kBool, kNum, kStr, kArr, kObj };
  OrderedJson() = default;  // null
  static OrderedJson num(double v);
  static OrderedJson str(const std::string& s);
  static OrderedJson boolean(bool b);
  static OrderedJson arr();
  static OrderedJson obj();
  // Sets `key` (replacing its value in place if present); makes this an object.
  OrderedJson& set(const std::string& key, OrderedJson v);
  OrderedJson& set(const std::string& key, double v) { return set(key, num(v)); }
  OrderedJson& set(const std::string& key, int v) { return set(key, num(v)); }
  OrderedJson& set(const std::string& key, int64_t v) { return set(key, num(static_cast<double>(v))); }
  OrderedJson& set(const std::string& key, const std::string& v) { return set(key, str(v)); }
  OrderedJson& set(const std::string& key, const char* v) { return set(key, str(v)); }
  OrderedJson& set_bool(const std::string& key, bool v) { return set(key, boolean(v)); }
  OrderedJson& push(OrderedJson v);  // makes this an array
  // One key per line, arrays of scalars on one line; integers without a fraction, other numbers
  // with 9 significant digits, non-finite numbers as null.
  void dump(std::string& out, int indent = 0) const;
  std::string dump() const;

 private:
  Kind k_ = kNull;
  double n_ = 0;
  bool b_ = false;
  std::string s_;
  std::vector<OrderedJson> a_;
  std::vector<std::pair<std::string, OrderedJson>> o_;
};

}  // namespace gyre
