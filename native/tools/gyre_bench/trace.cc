#include "trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "gyre/error.h"

namespace gyre_bench {

using gyre::Error;

namespace {

struct Rng {  // splitmix64 stream; hf_peer.py has the same one
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() { state += 0x9E3779B97F4A7C15ULL; uint64_t z = state; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL; return z ^ (z >> 31); }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  }
};

int json_int_field(const std::string& line, const std::string& key) {
  const size_t at = line.find("\"" + key + "\"");
  if (at == std::string::npos) return -1;
  const size_t colon = line.find(':', at);
  if (colon == std::string::npos) return -1;
  return std::atoi(line.c_str() + colon + 1);
}

}  // namespace

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::vector<TraceEntry> generate_trace(uint64_t seed, int n) {
  std::vector<TraceEntry> t;
  for (int i = 0; i < n; ++i) {
    Rng r(splitmix64(seed * 1000003ULL + static_cast<uint64_t>(i)));
    const int user = std::max(1, static_cast<int>(std::lround(200.0 * std::exp(0.8 * r.normal()))));
    const bool system = r.uniform() < 0.5;
    const int prompt = std::min(960, user + 12 + (system ? 110 : 0));
    const int output = std::min(80, std::max(8, static_cast<int>(std::lround(40.0 * std::exp(0.5 * r.normal())))));
    t.push_back({prompt, output});
  }
  return t;
}

std::vector<TraceEntry> read_trace(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot read trace " + path);
  std::vector<TraceEntry> t;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    TraceEntry e{json_int_field(line, "prompt_tokens"), json_int_field(line, "output_tokens")};
    if (e.prompt < 1 || e.output < 1)
      throw Error(path + ":" + std::to_string(n) + ": needs positive prompt_tokens and output_tokens");
    t.push_back(e);
  }
  if (t.empty()) throw Error(path + ": no requests");
  return t;
}

void write_trace(const std::string& path, const std::vector<TraceEntry>& t) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw Error("cannot write trace " + path);
  for (const TraceEntry& e : t) std::fprintf(f, "{\"prompt_tokens\": %d, \"output_tokens\": %d}\n", e.prompt, e.output);
  std::fclose(f);
}

int32_t prompt_token(uint64_t k, int j, int vocab) {
  return 3 + static_cast<int32_t>(splitmix64((k << 20) | static_cast<uint64_t>(j)) % static_cast<uint64_t>(vocab - 3));
}

}  // namespace gyre_bench
