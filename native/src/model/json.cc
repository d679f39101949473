#include "model/json.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "gyre/error.h"

namespace gyre {

const Json* Json::find(const std::string& key) const {
  if (kind != kObject) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

bool Json::is_integer() const {
  return kind == kNumber && std::floor(number) == number && text.find_first_of(".eE") == std::string::npos;
}

int64_t Json::as_int64() const { return std::strtoll(text.c_str(), nullptr, 10); }

namespace {

class Parser {
 public:
  Parser(const char* p, size_t n, const std::string& what) : begin_(p), p_(p), end_(p + n), what_(what) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_ws();
    if (p_ != end_) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) {
    throw Error(what_ + ": invalid JSON at offset " + std::to_string(p_ - begin_) + ": " + msg);
  }
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool consume(const char* lit) {
    size_t n = std::strlen(lit);
    if (static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, lit, n) == 0) { p_ += n; return true; }
    return false;
  }

  Json parse_value(int depth) {
    if (depth > 64) fail("nesting deeper than 64");
    skip_ws();
    if (p_ >= end_) fail("unexpected end");
    Json v;
    char c = *p_;
    if (c == '{') {
      v.kind = Json::kObject;
      ++p_;
      skip_ws();
      if (p_ < end_ && *p_ == '}') { ++p_; return v; }
      for (;;) {
        skip_ws();
        if (p_ >= end_ || *p_ != '"') fail("expected a string key");
        std::string key = parse_string();
        skip_ws();
        if (p_ >= end_ || *p_ != ':') fail("expected ':'");
        ++p_;
        v.object[key] = parse_value(depth + 1);
        skip_ws();
        if (p_ < end_ && *p_ == ',') { ++p_; continue; }
        if (p_ < end_ && *p_ == '}') { ++p_; return v; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Json::kArray;
      ++p_;
      skip_ws();
      if (p_ < end_ && *p_ == ']') { ++p_; return v; }
      for (;;) {
        v.array.push_back(parse_value(depth + 1));
        skip_ws();
        if (p_ < end_ && *p_ == ',') { ++p_; continue; }
        if (p_ < end_ && *p_ == ']') { ++p_; return v; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') { v.kind = Json::kString; v.text = parse_string(); return v; }
    if (consume("true")) { v.kind = Json::kBool; v.boolean = true; return v; }
    if (consume("false")) { v.kind = Json::kBool; return v; }
    if (consume("null")) return v;
    if (consume("NaN")) { v.kind = Json::kNumber; v.number = NAN; v.text = "NaN"; return v; }
    if (consume("Infinity")) { v.kind = Json::kNumber; v.number = INFINITY; v.text = "Infinity"; return v; }
    if (c == '-' || (c >= '0' && c <= '9')) {
      const char* s = p_;
      if (*p_ == '-') ++p_;
      while (p_ < end_ && (std::strchr("0123456789.eE+-", *p_) != nullptr)) ++p_;
      v.kind = Json::kNumber;
      v.text.assign(s, p_);
      char* stop = nullptr;
      v.number = std::strtod(v.text.c_str(), &stop);
      if (stop != v.text.c_str() + v.text.size()) fail("bad number '" + v.text + "'");
      return v;
    }
    fail(std::string("unexpected character '") + c + "'");
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) { out += static_cast<char>(cp); }
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t parse_hex4() {
    if (end_ - p_ < 4) fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = *p_++;
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else fail("bad \\u escape");
    }
    return v;
  }

  std::string parse_string() {
    ++p_;  // opening quote
    std::string out;
    while (p_ < end_ && *p_ != '"') {
      char c = *p_++;
      if (c != '\\') { out += c; continue; }
      if (p_ >= end_) break;
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            p_ += 2;
            uint32_t lo = parse_hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape \\") + e);
      }
    }
    if (p_ >= end_) fail("unterminated string");
    ++p_;
    return out;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string what_;
};

}  // namespace

Json parse_json(const char* data, size_t size, const std::string& what) {
  return Parser(data, size, what).parse_document();
}

}  // namespace gyre
