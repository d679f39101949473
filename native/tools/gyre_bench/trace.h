// The workload's requests: {prompt_tokens, output_tokens} from a file or the seeded generator
// (main.cc describes it), and the prompt ids of request k. native/scripts/hf_peer.py has the same
// arithmetic, so the transformers peer replays the same requests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gyre_bench {

struct TraceEntry { int prompt = 0, output = 0; };

uint64_t splitmix64(uint64_t x);
std::vector<TraceEntry> generate_trace(uint64_t seed, int n);
// JSON lines with prompt_tokens and output_tokens; throws gyre::Error naming the file and line.
std::vector<TraceEntry> read_trace(const std::string& path);
void write_trace(const std::string& path, const std::vector<TraceEntry>& t);
// Token j of request k: 3 + splitmix64(k << 20 | j) % (vocab - 3).
int32_t prompt_token(uint64_t k, int j, int vocab);

}  // namespace gyre_bench
