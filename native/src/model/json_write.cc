#include "model/json_write.h"

#include <cmath>
#include <cstdio>

namespace gyre {
namespace {

void escape(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c == '\n') out += "\\n";
    else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out += static_cast<char>(c);
  }
  out += '"';
}

}  // namespace

OrderedJson OrderedJson::num(double v) { OrderedJson j; j.k_ = kNum; j.n_ = v; return j; }
OrderedJson OrderedJson::str(const std::string& s) { OrderedJson j; j.k_ = kStr; j.s_ = s; return j; }
OrderedJson OrderedJson::boolean(bool b) { OrderedJson j; j.k_ = kBool; j.b_ = b; return j; }
OrderedJson OrderedJson::arr() { OrderedJson j; j.k_ = kArr; return j; }
OrderedJson OrderedJson::obj() { OrderedJson j; j.k_ = kObj; return j; }

OrderedJson& OrderedJson::set(const std::string& key, OrderedJson v) {
  k_ = kObj;
  for (auto& kv : o_)
    if (kv.first == key) { kv.second = std::move(v); return *this; }
  o_.emplace_back(key, std::move(v));
  return *this;
}

OrderedJson& OrderedJson::push(OrderedJson v) {
  k_ = kArr;
  a_.push_back(std::move(v));
  return *this;
}

std::string OrderedJson::dump() const {
  std::string out;
  dump(out);
  return out;
}

void OrderedJson::dump(std::string& out, int indent) const {
  const std::string pad(static_cast<size_t>(indent + 1), ' '), end_pad(static_cast<size_t>(indent), ' ');
  switch (k_) {
    case kNull: out += "null"; break;
    case kBool: out += b_ ? "true" : "false"; break;
    case kNum: {
      if (!std::isfinite(n_)) { out += "null"; break; }
      char buf[64];
      if (n_ == std::floor(n_) && std::fabs(n_) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", n_);
      else std::snprintf(buf, sizeof buf, "%.9g", n_);
      out += buf;
      break;
    }
    case kStr: escape(s_, out); break;
    case kArr: {
      bool simple = true;
      for (const OrderedJson& v : a_) simple = simple && v.k_ != kArr && v.k_ != kObj;
      out += "[";
      for (size_t i = 0; i < a_.size(); ++i) {
        if (i) out += ",";
        if (simple) { if (i) out += " "; } else { out += "\n" + pad; }
        a_[i].dump(out, indent + 1);
      }
      if (!simple && !a_.empty()) out += "\n" + end_pad;
      out += "]";
      break;
    }
    case kObj: {
      out += "{";
      for (size_t i = 0; i < o_.size(); ++i) {
        out += i ? ",\n" : "\n";
        out += pad;
        escape(o_[i].first, out);
        out += ": ";
        o_[i].second.dump(out, indent + 1);
      }
      if (!o_.empty()) out += "\n" + end_pad;
      out += "}";
      break;
    }
  }
}

}  // namespace gyre
