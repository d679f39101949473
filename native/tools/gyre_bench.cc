// gyre_bench: the CUDA backend's speed on a model of a real shape with random weights, in one
// process, no Node, no model files.
//
//   gyre_bench [--shape llama-2-7b|llama-2-13b|mistral-7b] [--layers N] [--quantization none|int8]
//              [--phases bandwidth,prefill,decode,kv,workload] [--skip-workload] [--json PATH]
//              [--decode-batches 1,8,32,64] [--context 512] [--decode-steps 20]
//              [--prefill-chunks 512,2048] [--prefill-reps 5]
//              [--kv-budget SIZE] [--gpu-memory-budget SIZE]
//              [--users 1,4,16,32,64] [--requests-per-user 2] [--min-requests 8]
//              [--trace FILE.jsonl | --trace-seed S --trace-size N] [--write-trace FILE.jsonl]
//              [--time-limit-s T] [--label TEXT]
//
// The model is "virtual": a ModelWeights of the shape's config whose tensors have dtype and shape
// but no host data (data == nullptr); the CUDA backend's upload fills such tensors with random
// normal values generated on the GPU. F16 everywhere, or with --quantization int8 every layer's
// linear weights I8 with an F32 scale per output row (embedding, norms and LM head stay F16).
//
// Phases (each one's failure is recorded in the JSON and the next one runs; the JSON is rewritten
// after every phase, so a run killed by a time limit keeps what it had):
//   bandwidth  device-to-device cudaMemcpyAsync of a 1 GiB buffer, CUDA events, median of 15;
//              GB/s counts bytes read + bytes written. The ceiling for decode.
//   prefill    one sequence's chunk of T tokens from position 0 (logits of the last token only),
//              wall time of backend->forward (it returns when the logits are on the host), median.
//              Reports the chunk's linear-layer FLOPs (and attention FLOPs apart); the summary
//              compares them with torch.matmul's rate on the same shapes (hf_peer.py).
//   decode     B sequences, each with --context tokens already in the KV cache (prefilled once, in
//              chunks of <= 2048 tokens), then decode steps of B tokens at position --context
//              (every timed step rewrites the same slot, so the context stays exactly --context + 1
//              keys). Median wall time per step, against the floor
//              (weight bytes + KV bytes read) / measured copy bandwidth.
//   kv         the KV pool the backend sizes for a memory budget of --kv-budget (default the A10G's
//              production budget, gyre::kA10gBudgetBytes: 0.9 x 23,028 MiB): tokens, and concurrent
//              960+80-token conversations.
//   workload   the seed workload through gyre::Engine: a trace of {prompt_tokens, output_tokens}
//              (greedy, ignore_eos, exactly output_tokens new tokens), replayed for each N in
//              --users by N closed-loop users (each submits its next request when its previous one
//              finished); max(--min-requests, --requests-per-user x N) requests per level, taken
//              from one cursor over the trace that continues across levels. requests/s, mean
//              latency, TTFT and TPOT ((latency - TTFT) / (tokens - 1)). The loop waits on the
//              engine's output callback (a condition variable, no polling); a level that reaches
//              --time-limit-s stops issuing, aborts its unfinished requests and is reported with
//              "partial": true (the requests that finished are counted).
//
// The trace: --trace FILE (JSON lines with prompt_tokens and output_tokens), or the built-in seeded
// generator (bench/README.md's workload in lengths only): user text lognormal (median 200, sigma
// 0.8), a 110-token system prompt on half the requests, ~12 tokens of chat template, prompt capped
// at 960; output lognormal (median 40, sigma 0.5) clamped to [8, 80]. --write-trace saves it for the
// transformers peer (native/scripts/hf_peer.py), which replays the same requests. Prompt token ids
// are a pure function of (request number, position): 3 + splitmix64(k << 20 | j) % (vocab - 3),
// where k counts requests from 0 over all levels, so no two requests share a prefix.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#ifdef GYRE_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "gyre/backend.h"
#include "gyre/engine.h"
#include "gyre/error.h"
#include "gyre/gpu_memory.h"
#include "gyre/shapes.h"
#include "gyre/weights.h"

using namespace gyre;

namespace {

// ---------- a small JSON value (ordered objects), enough for this report ----------

class Json {
 public:
  enum Kind { kNull, kBool, kNum, kStr, kArr, kObj };
  Json() = default;
  static Json num(double v) { Json j; j.k_ = kNum; j.n_ = v; return j; }
  static Json str(const std::string& s) { Json j; j.k_ = kStr; j.s_ = s; return j; }
  static Json boolean(bool b) { Json j; j.k_ = kBool; j.b_ = b; return j; }
  static Json arr() { Json j; j.k_ = kArr; return j; }
  static Json obj() { Json j; j.k_ = kObj; return j; }
  Json& set(const std::string& key, Json v) {
    k_ = kObj;
    for (auto& kv : o_)
      if (kv.first == key) { kv.second = std::move(v); return *this; }
    o_.emplace_back(key, std::move(v));
    return *this;
  }
  Json& set(const std::string& key, double v) { return set(key, num(v)); }
  Json& set(const std::string& key, int v) { return set(key, num(v)); }
  Json& set(const std::string& key, int64_t v) { return set(key, num(static_cast<double>(v))); }
  Json& set(const std::string& key, const std::string& v) { return set(key, str(v)); }
  Json& set(const std::string& key, const char* v) { return set(key, str(v)); }
  Json& set_bool(const std::string& key, bool v) { return set(key, boolean(v)); }
  Json& push(Json v) { k_ = kArr; a_.push_back(std::move(v)); return *this; }
  void dump(std::string& out, int indent = 0) const {
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
        for (const Json& v : a_) simple = simple && v.k_ != kArr && v.k_ != kObj;
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

 private:
  static void escape(const std::string& s, std::string& out) {
    out += '"';
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
      else if (c == '\n') out += "\\n";
      else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
      else out += static_cast<char>(c);
    }
    out += '"';
  }
  Kind k_ = kNull;
  double n_ = 0;
  bool b_ = false;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

// ---------- the virtual model ----------

// Bytes and FLOPs, counted from the shapes (what a perfect kernel must move / compute).
struct Counts {
  int64_t linear_bytes = 0;     // every layer's linear weights (+ int8 scales)
  int64_t linear_params = 0;    // their element count
  int64_t norm_bytes = 0;       // norms as the backend holds them (float32)
  int64_t lm_head_bytes = 0;
  int64_t embed_row_bytes = 0;  // one token's embedding row
  int64_t kv_bytes_per_token = 0;  // K and V, every layer, f16
};

[[maybe_unused]] Counts count(const ModelWeights& w) {
  Counts k;
  const ModelConfig& c = w.config;
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      k.linear_bytes += static_cast<int64_t>(t->nbytes);
      k.linear_params += t->numel();
    }
    for (const TensorView* t : {&l.wq_scale, &l.wk_scale, &l.wv_scale, &l.wo_scale, &l.w_gate_scale, &l.w_up_scale,
                                &l.w_down_scale})
      k.linear_bytes += static_cast<int64_t>(t->nbytes);
    k.norm_bytes += 2LL * c.hidden_size * 4;
  }
  k.norm_bytes += int64_t(c.hidden_size) * 4;
  k.lm_head_bytes = static_cast<int64_t>(w.lm_head.nbytes);
  k.embed_row_bytes = int64_t(c.hidden_size) * 2;
  k.kv_bytes_per_token = gyre::kv_bytes_per_token(c);
  return k;
}

// Linear-layer FLOPs of T tokens through every layer (2 per multiply-add), and the causal
// attention FLOPs (QK^T and PV) of a chunk of T tokens from position 0.
[[maybe_unused]] double linear_flops(const ModelConfig& c, int64_t T) {
  const double H = c.hidden_size, I = c.intermediate_size, QO = double(c.num_heads) * c.head_dim,
               KVO = double(c.num_kv_heads) * c.head_dim;
  const double per_layer = (QO + 2 * KVO) * H + H * QO + 2 * I * H + H * I;
  return 2.0 * T * per_layer * c.num_layers;
}
[[maybe_unused]] double attention_flops(const ModelConfig& c, int64_t T) {
  return 4.0 * c.num_heads * c.head_dim * (double(T) * (T + 1) / 2) * c.num_layers;
}

// ---------- the trace ----------

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

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

struct TraceEntry { int prompt = 0, output = 0; };

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

int json_int_field(const std::string& line, const std::string& key) {
  const size_t at = line.find("\"" + key + "\"");
  if (at == std::string::npos) return -1;
  const size_t colon = line.find(':', at);
  if (colon == std::string::npos) return -1;
  return std::atoi(line.c_str() + colon + 1);
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

[[maybe_unused]] int32_t prompt_token(uint64_t k, int j, int vocab) {
  return 3 + static_cast<int32_t>(splitmix64((k << 20) | static_cast<uint64_t>(j)) % static_cast<uint64_t>(vocab - 3));
}

// ---------- options ----------

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(std::atoi(item.c_str()));
  return v;
}

struct Options {
  std::string shape = "llama-2-7b", quantization = "none", json_path, phases = "bandwidth,prefill,decode,kv,workload";
  std::string trace_path, write_trace_path, kv_budget, gpu_memory_budget, label;
  int layers = 0, context = 512, decode_steps = 20, prefill_reps = 5, requests_per_user = 2, min_requests = 8;
  int trace_size = 512;
  uint64_t trace_seed = 20261201;
  double time_limit_s = 0;
  bool skip_workload = false;
  std::vector<int> decode_batches{1, 8, 32, 64}, prefill_chunks{512, 2048}, users{1, 4, 16, 32, 64};
};

const char* kUsage =
    "usage: gyre_bench [--shape llama-2-7b|llama-2-13b|mistral-7b] [--layers N] [--quantization none|int8]\n"
    "                  [--phases bandwidth,prefill,decode,kv,workload] [--skip-workload] [--json PATH]\n"
    "                  [--decode-batches 1,8,32,64] [--context 512] [--decode-steps 20]\n"
    "                  [--prefill-chunks 512,2048] [--prefill-reps 5] [--kv-budget SIZE] [--gpu-memory-budget SIZE]\n"
    "                  [--users 1,4,16,32,64] [--requests-per-user 2] [--min-requests 8]\n"
    "                  [--trace FILE.jsonl | --trace-seed S --trace-size N] [--write-trace FILE.jsonl]\n"
    "                  [--time-limit-s T] [--label TEXT]\n";

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") { std::fputs(kUsage, stdout); std::exit(0); }
    if (a == "--skip-workload") { o.skip_workload = true; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "gyre_bench: %s needs a value\n%s", a.c_str(), kUsage); return false; }
    const std::string v = argv[++i];
    if (a == "--shape") o.shape = v;
    else if (a == "--layers") o.layers = std::atoi(v.c_str());
    else if (a == "--quantization") o.quantization = v;
    else if (a == "--json") o.json_path = v;
    else if (a == "--phases") o.phases = v;
    else if (a == "--decode-batches") o.decode_batches = int_list(v);
    else if (a == "--context") o.context = std::atoi(v.c_str());
    else if (a == "--decode-steps") o.decode_steps = std::atoi(v.c_str());
    else if (a == "--prefill-chunks") o.prefill_chunks = int_list(v);
    else if (a == "--prefill-reps") o.prefill_reps = std::atoi(v.c_str());
    else if (a == "--kv-budget") o.kv_budget = v;
    else if (a == "--gpu-memory-budget") o.gpu_memory_budget = v;
    else if (a == "--users") o.users = int_list(v);
    else if (a == "--requests-per-user") o.requests_per_user = std::atoi(v.c_str());
    else if (a == "--min-requests") o.min_requests = std::atoi(v.c_str());
    else if (a == "--trace") o.trace_path = v;
    else if (a == "--trace-seed") o.trace_seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--trace-size") o.trace_size = std::atoi(v.c_str());
    else if (a == "--write-trace") o.write_trace_path = v;
    else if (a == "--time-limit-s") o.time_limit_s = std::atof(v.c_str());
    else if (a == "--label") o.label = v;
    else { std::fprintf(stderr, "gyre_bench: unknown option %s\n%s", a.c_str(), kUsage); return false; }
  }
  for (const std::string* size : {&o.kv_budget, &o.gpu_memory_budget})
    if (!size->empty() && parse_bytes(*size) <= 0) {
      std::fprintf(stderr, "gyre_bench: '%s' is not a size (e.g. 20G, 512M, bytes)\n", size->c_str());
      return false;
    }
  if (o.quantization != "none" && o.quantization != "int8") {
    std::fprintf(stderr, "gyre_bench: --quantization must be none or int8\n");
    return false;
  }
  if (o.context < 1 || o.decode_steps < 1 || o.prefill_reps < 1 || o.trace_size < 1 || o.min_requests < 1 ||
      o.requests_per_user < 0) {
    std::fprintf(stderr, "gyre_bench: --context, --decode-steps, --prefill-reps, --trace-size, --min-requests must be >= 1\n");
    return false;
  }
  return true;
}

[[maybe_unused]] bool has_phase(const Options& o, const std::string& p) {
  if (p == "workload" && o.skip_workload) return false;
  std::stringstream ss(o.phases);
  for (std::string item; std::getline(ss, item, ',');)
    if (item == p) return true;
  return false;
}

using Clock = std::chrono::steady_clock;
[[maybe_unused]] double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[maybe_unused]] double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
[[maybe_unused]] double mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

#ifdef GYRE_HAVE_CUDA
namespace {

#define BENCH_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) throw Error(std::string(#call) + ": " + cudaGetErrorString(e_));    \
  } while (0)

struct Report {
  Json root = Json::obj();
  std::string path;
  void save() const {
    if (path.empty()) return;
    std::string text;
    root.dump(text);
    text += "\n";
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) { std::fprintf(stderr, "gyre_bench: cannot write %s\n", tmp.c_str()); return; }
    std::fputs(text.c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
};

Json gpu_info() {
  Json g = Json::obj();
  int dev = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  BENCH_CUDA(cudaGetDeviceProperties(&p, dev));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  g.set("name", std::string(p.name));
  g.set("compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor));
  g.set("multiprocessors", p.multiProcessorCount);
  g.set("memory_bytes", static_cast<int64_t>(p.totalGlobalMem));
  g.set("memory_free_bytes_at_start", static_cast<int64_t>(free_b));
  g.set("l2_bytes", p.l2CacheSize);
  g.set("cuda_driver", driver);
  g.set("cuda_runtime", runtime);
  return g;
}

std::string gpu_name() {
  cudaDeviceProp p{};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "?";
  return p.name;
}

// Device-to-device copy of `bytes`, CUDA events, median over `reps` after 3 warm-ups.
Json measure_bandwidth(size_t bytes, int reps, double& gbps_out) {
  void *src = nullptr, *dst = nullptr;
  cudaStream_t s = nullptr;
  cudaEvent_t a = nullptr, b = nullptr;
  Json j = Json::obj();
  auto cleanup = [&] {
    if (src) cudaFree(src);
    if (dst) cudaFree(dst);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    if (s) cudaStreamDestroy(s);
  };
  try {
    BENCH_CUDA(cudaMalloc(&src, bytes));
    BENCH_CUDA(cudaMalloc(&dst, bytes));
    BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    BENCH_CUDA(cudaEventCreate(&a));
    BENCH_CUDA(cudaEventCreate(&b));
    BENCH_CUDA(cudaMemsetAsync(src, 0x5A, bytes, s));
    BENCH_CUDA(cudaMemsetAsync(dst, 0x00, bytes, s));
    std::vector<double> ms;
    for (int i = 0; i < reps + 3; ++i) {
      BENCH_CUDA(cudaEventRecord(a, s));
      BENCH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
      BENCH_CUDA(cudaEventRecord(b, s));
      BENCH_CUDA(cudaEventSynchronize(b));
      float t = 0;
      BENCH_CUDA(cudaEventElapsedTime(&t, a, b));
      if (i >= 3) ms.push_back(t);
    }
    const double med = median(ms);
    gbps_out = 2.0 * static_cast<double>(bytes) / (med * 1e-3) / 1e9;
    j.set("bytes", static_cast<int64_t>(bytes));
    j.set("reps", reps);
    j.set("median_ms", med);
    j.set("min_ms", *std::min_element(ms.begin(), ms.end()));
    j.set("GBps", gbps_out);
    j.set("counts", "bytes read + bytes written (2 x buffer) per copy");
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  return j;
}

// Sequences with fixed blocks: sequence s owns blocks [s * bps, (s + 1) * bps).
struct Layout {
  int block_size = 16, blocks_per_seq = 0;
  int64_t slot(int seq, int pos) const {
    return static_cast<int64_t>(seq * blocks_per_seq + pos / block_size) * block_size + pos % block_size;
  }
};

// One batch: for each (seq, begin, n) the tokens [begin, begin + n) of that sequence.
struct Piece { int seq, begin, n; };
Batch make_batch(const Layout& L, const std::vector<Piece>& pieces, int vocab, uint64_t salt) {
  Batch b;
  b.clear();
  b.max_blocks_per_seq = L.blocks_per_seq;
  for (const Piece& p : pieces) {
    for (int i = p.begin; i < p.begin + p.n; ++i) {
      b.token_ids.push_back(prompt_token(salt + static_cast<uint64_t>(p.seq), i, vocab));
      b.positions.push_back(i);
      b.slot_mapping.push_back(L.slot(p.seq, i));
    }
    b.logits_indices.push_back(b.num_tokens() - 1);
    b.query_start.push_back(b.num_tokens());
    b.context_lens.push_back(p.begin + p.n);
    for (int j = 0; j < L.blocks_per_seq; ++j) b.block_tables.push_back(p.seq * L.blocks_per_seq + j);
  }
  return b;
}

double timed_forward(Backend& be, const Batch& b, std::vector<float>& logits) {
  logits.resize(b.logits_indices.size() * static_cast<size_t>(be.config().vocab_size));
  const auto t0 = Clock::now();
  be.forward(b, logits.data());  // returns once the logits are on the host
  return seconds_since(t0);
}

// ---------- the workload through gyre::Engine ----------

struct Level {
  int users = 0, requests = 0, completed = 0, errors = 0, wrong_length = 0;
  double wall_s = 0, rps = 0, out_tok_s = 0, mean_latency_s = 0, p50_latency_s = 0, p99_latency_s = 0;
  double mean_ttft_s = 0, p50_ttft_s = 0, mean_tpot_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0, preemptions = 0, steps = 0;
  std::string first_error;
  bool skipped = false, partial = false;
  int aborted = 0;  // requests still running when the level stopped early, aborted
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

class WorkloadRunner {
 public:
  WorkloadRunner(std::shared_ptr<ModelWeights> w, const EngineOptions& opts) : vocab_(w->config.vocab_size) {
    engine_ = std::make_unique<Engine>(std::move(w), opts, [this](StepOutput&& out) { on_output(std::move(out)); });
  }
  Engine& engine() { return *engine_; }

  // Runs `count` requests with `users` closed-loop users; request i (0-based within the level) is
  // trace[(k0 + i) % size] with prompt ids of request number k0 + i. Past `deadline` (or after 120 s
  // without a finished request) it stops issuing, aborts what is still running and reports the
  // requests that finished (partial), so neither a time limit nor a stall loses the level.
  Level run(const std::vector<TraceEntry>& trace, uint64_t k0, int users, int count, int fixed_output = 0,
            Clock::time_point deadline = Clock::time_point::max()) {
    Level lv;
    lv.users = users;
    lv.requests = count;
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.clear();
      finished_.clear();
    }
    const EngineStats before = engine_->stats();
    const auto t0 = Clock::now();
    int issued = 0, done = 0;
    std::vector<double> lat, ttft, tpot;
    auto submit = [&] {
      const uint64_t k = k0 + static_cast<uint64_t>(issued);
      const TraceEntry& e = trace[static_cast<size_t>(k % trace.size())];
      Request r;
      r.id = k + 1;  // ids start at 1
      r.prompt.resize(static_cast<size_t>(e.prompt));
      for (int j = 0; j < e.prompt; ++j) r.prompt[static_cast<size_t>(j)] = prompt_token(k, j, vocab_);
      r.params.temperature = 0;
      r.params.ignore_eos = true;
      r.params.max_tokens = fixed_output > 0 ? fixed_output : e.output;
      {
        std::lock_guard<std::mutex> lock(mu_);
        Live& l = live_[r.id];
        l.submitted = Clock::now();
        l.expected = r.params.max_tokens;
      }
      lv.prompt_tokens += e.prompt;
      ++issued;
      try {
        engine_->submit(std::move(r));
      } catch (const std::exception& ex) {
        std::lock_guard<std::mutex> lock(mu_);
        Live& l = live_[k + 1];
        l.error = ex.what();
        l.finished = Clock::now();
        finished_.push_back(k + 1);
      }
    };
    for (int u = 0; u < std::min(users, count); ++u) submit();
    std::unique_lock<std::mutex> lock(mu_);
    auto partial = [&] {
      lv.partial = true;
      lv.first_error = "time limit: partial level (" + std::to_string(done) + " of " + std::to_string(count) +
                       " requests)";
    };
    while (done < count) {
      const auto stall = Clock::now() + std::chrono::seconds(120);
      if (!cv_.wait_until(lock, std::min(stall, deadline), [&] { return !finished_.empty(); })) {
        if (Clock::now() >= deadline) partial();
        else lv.first_error = "no request finished for 120 s";
        break;
      }
      std::vector<uint64_t> ids;
      ids.swap(finished_);
      for (uint64_t id : ids) {
        const Live l = live_[id];
        live_.erase(id);
        ++done;
        if (!l.error.empty()) {
          ++lv.errors;
          if (lv.first_error.empty()) lv.first_error = l.error;
        } else {
          ++lv.completed;
          const double total = std::chrono::duration<double>(l.finished - l.submitted).count();
          const double first = std::chrono::duration<double>(l.first_token - l.submitted).count();
          lat.push_back(total);
          ttft.push_back(first);
          if (l.tokens > 1) tpot.push_back((total - first) / (l.tokens - 1));
          lv.output_tokens += l.tokens;
          if (l.tokens != l.expected) ++lv.wrong_length;
        }
        if (issued < count && Clock::now() < deadline) {
          lock.unlock();
          submit();
          lock.lock();
        }
      }
    }
    lv.wall_s = seconds_since(t0);
    // Requests left running by a break: abort them and wait (at most 10 s) for their reports, so that
    // they do not share the engine with the next level.
    std::vector<uint64_t> left;
    for (const auto& kv : live_)
      if (kv.second.finished == Clock::time_point{}) left.push_back(kv.first);
    if (!left.empty()) {
      lock.unlock();
      for (uint64_t id : left) engine_->abort(id);
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(10), [&] {
        for (uint64_t id : left) {
          auto it = live_.find(id);
          if (it != live_.end() && it->second.finished == Clock::time_point{}) return false;
        }
        return true;
      });
      lv.aborted = static_cast<int>(left.size());
    }
    lock.unlock();
    const EngineStats after = engine_->stats();
    lv.preemptions = after.num_preemptions - before.num_preemptions;
    lv.steps = after.num_steps - before.num_steps;
    lv.rps = lv.completed / lv.wall_s;
    lv.out_tok_s = static_cast<double>(lv.output_tokens) / lv.wall_s;
    lv.mean_latency_s = mean(lat);
    lv.p50_latency_s = percentile(lat, 0.5);
    lv.p99_latency_s = percentile(lat, 0.99);
    lv.mean_ttft_s = mean(ttft);
    lv.p50_ttft_s = percentile(ttft, 0.5);
    lv.mean_tpot_s = mean(tpot);
    return lv;
  }

 private:
  struct Live {
    Clock::time_point submitted, first_token, finished;
    int tokens = 0, expected = 0;
    std::string error;
  };
  void on_output(StepOutput&& out) {
    const auto now = Clock::now();
    bool any = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const SeqOutput& o : out.outputs) {
        auto it = live_.find(o.id);
        if (it == live_.end()) continue;
        Live& l = it->second;
        if (!o.tokens.empty() && l.tokens == 0) l.first_token = now;
        l.tokens += static_cast<int>(o.tokens.size());
        if (o.finish != FinishReason::kNone) {
          l.finished = now;
          if (o.finish == FinishReason::kError || o.finish == FinishReason::kAbort)
            l.error = std::string(finish_reason_name(o.finish)) + ": " + o.error;
          finished_.push_back(o.id);
          any = true;
        }
      }
    }
    if (any) cv_.notify_all();
  }

  int vocab_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Live> live_;
  std::vector<uint64_t> finished_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first, while the members it calls back into live
};

Json level_json(const Level& lv) {
  Json j = Json::obj();
  j.set("users", lv.users);
  j.set("requests", lv.requests);
  j.set("completed", lv.completed);
  j.set("errors", lv.errors);
  if (!lv.first_error.empty()) j.set("first_error", lv.first_error);
  if (lv.partial) j.set_bool("partial", true);
  if (lv.aborted) j.set("aborted", lv.aborted);
  j.set("wrong_length", lv.wrong_length);
  j.set("wall_s", lv.wall_s);
  j.set("requests_per_s", lv.rps);
  j.set("output_tokens_per_s", lv.out_tok_s);
  j.set("prompt_tokens", lv.prompt_tokens);
  j.set("output_tokens", lv.output_tokens);
  j.set("mean_latency_s", lv.mean_latency_s);
  j.set("p50_latency_s", lv.p50_latency_s);
  j.set("p99_latency_s", lv.p99_latency_s);
  j.set("mean_ttft_s", lv.mean_ttft_s);
  j.set("p50_ttft_s", lv.p50_ttft_s);
  j.set("mean_tpot_s", lv.mean_tpot_s);
  j.set("engine_steps", lv.steps);
  j.set("preemptions", lv.preemptions);
  return j;
}

// ---------- main body ----------

Json error_json(const std::string& what) {
  Json e = Json::obj();
  e.set("error", what);
  return e;
}

int run(const Options& o, const std::vector<TraceEntry>& trace, const std::string& trace_source) {
  const auto start = Clock::now();
  auto over_time = [&] { return o.time_limit_s > 0 && seconds_since(start) > o.time_limit_s; };
  auto has = [&](const char* p) { return has_phase(o, p); };
  Report rep;
  rep.path = o.json_path;
  Json& R = rep.root;
  Json phases = Json::obj();
  int failures = 0;
  auto save = [&] {
    R.set("seconds", seconds_since(start));
    R.set("phases", phases);
    rep.save();
  };
  auto fail = [&](const char* phase, const std::string& what) {
    std::fprintf(stderr, "gyre_bench: %s: %s\n", phase, what.c_str());
    phases.set(std::string(phase) + "_error", error_json(what));  // rows measured before the error stay
    ++failures;
    save();
  };
  R.set("tool", "gyre_bench");
  if (!o.label.empty()) R.set("label", o.label);
#ifdef GYRE_HAVE_CUBLASLT
  const char* gemm = "cublaslt";
#else
  const char* gemm = "mma";
#endif
  R.set("gemm", gemm);

  int ndev = 0;
  const cudaError_t de = cudaGetDeviceCount(&ndev);
  if (de != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "gyre_bench: no CUDA device is available (%s); this tool measures a GPU and needs one\n",
                 de != cudaSuccess ? cudaGetErrorString(de) : "0 devices");
    R.set("error", "no CUDA device");
    rep.save();
    return 2;
  }
  Json gpu = gpu_info();
  R.set("gpu", gpu);
  // Every backend and engine of this run gets --gpu-memory-budget; the kv phase its own --kv-budget.
  GpuMemoryOptions gpu_memory;
  gpu_memory.budget = o.gpu_memory_budget.empty() ? 0 : parse_bytes(o.gpu_memory_budget);
  if (gpu_memory.budget > 0) R.set("gpu_memory_budget", gpu_memory.budget);
  const int64_t kv_budget = o.kv_budget.empty() ? kA10gBudgetBytes : parse_bytes(o.kv_budget);

  ModelConfig cfg = shape_config(o.shape);
  if (o.layers > 0) cfg.num_layers = o.layers;
  const bool int8 = o.quantization == "int8";
  std::shared_ptr<ModelWeights> weights = virtual_model(cfg, int8);
  const Counts cnt = count(*weights);
  {
    Json m = Json::obj();
    m.set("shape", o.shape);
    m.set("architecture", cfg.architecture);
    m.set("layers", cfg.num_layers);
    m.set("hidden", cfg.hidden_size);
    m.set("intermediate", cfg.intermediate_size);
    m.set("heads", cfg.num_heads);
    m.set("kv_heads", cfg.num_kv_heads);
    m.set("head_dim", cfg.head_dim);
    m.set("vocab", cfg.vocab_size);
    m.set("sliding_window", cfg.sliding_window);
    m.set("dtype", "f16");
    m.set("quantization", o.quantization);
    m.set("weights", "virtual: random normal values generated on the GPU at upload (no files)");
    m.set("linear_weight_bytes", cnt.linear_bytes);
    m.set("linear_params", cnt.linear_params);
    m.set("lm_head_bytes", cnt.lm_head_bytes);
    m.set("norm_bytes", cnt.norm_bytes);
    m.set("kv_bytes_per_token", cnt.kv_bytes_per_token);
    R.set("model", m);
  }
  save();
  std::printf("gyre_bench: %s%s, %d layers, %s GEMM, GPU %s\n", o.shape.c_str(), int8 ? " int8" : "", cfg.num_layers,
              gemm, gpu_name().c_str());
  std::fflush(stdout);

  // --- bandwidth ---
  double bw = NAN;  // GB/s, read + write
  if (has("bandwidth")) {
    try {
      phases.set("bandwidth", measure_bandwidth(size_t(1) << 30, 15, bw));
      std::printf("copy bandwidth: %.0f GB/s (device-to-device, read + write)\n", bw);
    } catch (const std::exception& e) {
      fail("bandwidth", e.what());
    }
    save();
  }

  // --- prefill, decode, kv: one backend ---
  const std::vector<int> batches = has("decode") ? o.decode_batches : std::vector<int>{};
  const std::vector<int> chunks = has("prefill") ? o.prefill_chunks : std::vector<int>{};
  Json prefill_rows = Json::arr(), decode_rows = Json::arr();
  if (has("prefill") || has("decode") || has("kv")) {
    std::unique_ptr<Backend> be;
    try {
      const auto t0 = Clock::now();
      be = make_backend("cuda", weights);
      R.set("backend_create_s", seconds_since(t0));
    } catch (const std::exception& e) {
      fail("backend", e.what());
    }
    const int bs = 16;
    Layout Ld{bs, (o.context + 1 + bs - 1) / bs};
    int maxT = 0;
    for (int T : chunks) maxT = std::max(maxT, T);
    Layout Lp{bs, std::max(1, (maxT + bs - 1) / bs)};
    std::vector<int> fit_batches = batches;
    std::sort(fit_batches.begin(), fit_batches.end());
    if (be && (has("prefill") || has("decode"))) {
      // A pool for the largest batch's contexts (and the longest prefill chunk); smaller if it does not fit.
      for (;;) {
        const int maxB = fit_batches.empty() ? 0 : fit_batches.back();
        KvCacheSpec spec;
        spec.block_size = bs;
        spec.gpu_memory = gpu_memory;
        spec.num_blocks = std::max({1, maxB * Ld.blocks_per_seq, Lp.blocks_per_seq});
        try {
          be->allocate_kv_cache(spec);
          R.set("kv_blocks_for_bench", spec.num_blocks);
          break;
        } catch (const std::exception& e) {
          if (fit_batches.size() <= 1) { fail("kv_pool", e.what()); be.reset(); break; }
          std::fprintf(stderr, "gyre_bench: KV for batch %d does not fit (%s); trying smaller\n", maxB, e.what());
          fit_batches.pop_back();
        }
      }
    }
    std::vector<float> logits;
    const int V = cfg.vocab_size;

    // prefill
    if (be && has("prefill")) {
      try {
        for (int T : chunks) {
          if (over_time()) { Json s = Json::obj(); s.set("tokens", T); s.set("skipped", "time limit"); prefill_rows.push(s); continue; }
          const Batch b = make_batch(Lp, {{0, 0, T}}, V, 777);
          timed_forward(*be, b, logits);  // warm-up
          std::vector<double> t;
          for (int r = 0; r < o.prefill_reps; ++r) t.push_back(timed_forward(*be, b, logits));
          const double med = median(t);
          const double lin = linear_flops(cfg, T), head = 2.0 * V * cfg.hidden_size, att = attention_flops(cfg, T);
          Json row = Json::obj();
          row.set("tokens", T);
          row.set("reps", o.prefill_reps);
          row.set("median_ms", med * 1e3);
          row.set("min_ms", *std::min_element(t.begin(), t.end()) * 1e3);
          row.set("tokens_per_s", T / med);
          row.set("linear_flops", lin);
          row.set("lm_head_flops", head);
          row.set("attention_flops", att);
          row.set("linear_tflops_achieved", lin / med / 1e12);
          row.set("all_tflops_achieved", (lin + head + att) / med / 1e12);
          row.set("note", "time is the whole forward (norms, rope, attention, lm_head, host copies); "
                          "linear_tflops_achieved = linear FLOPs / that time, a lower bound on the GEMMs' rate");
          prefill_rows.push(row);
          phases.set("prefill", prefill_rows);
          save();
          std::printf("prefill %5d tokens: %8.2f ms  %9.0f tok/s  linear %.1f TFLOP/s\n", T, med * 1e3, T / med,
                      lin / med / 1e12);
          std::fflush(stdout);
        }
        phases.set("prefill", prefill_rows);
      } catch (const std::exception& e) {
        fail("prefill", e.what());
      }
      save();
    }

    // decode
    if (be && has("decode")) {
      try {
        const int maxB = fit_batches.empty() ? 0 : fit_batches.back();
        // Contexts: --context tokens for each of maxB sequences, in chunks of <= 2048 tokens.
        const auto t0 = Clock::now();
        const int per = std::max(1, 2048 / o.context);
        for (int s = 0; s < maxB; s += per) {
          std::vector<Piece> pieces;
          for (int q = s; q < std::min(maxB, s + per); ++q) pieces.push_back({q, 0, o.context});
          std::vector<float> lg;
          timed_forward(*be, make_batch(Ld, pieces, V, 1000), lg);
        }
        R.set("decode_context_prefill_s", seconds_since(t0));
        for (int B : batches) {
          Json row = Json::obj();
          row.set("batch", B);
          row.set("context", o.context);
          if (B > maxB) { row.set("skipped", "the KV pool for this batch does not fit"); decode_rows.push(row); continue; }
          if (over_time()) { row.set("skipped", "time limit"); decode_rows.push(row); continue; }
          std::vector<Piece> pieces;
          for (int s = 0; s < B; ++s) pieces.push_back({s, o.context, 1});
          const Batch b = make_batch(Ld, pieces, V, 2000);
          for (int w = 0; w < 3; ++w) timed_forward(*be, b, logits);
          std::vector<double> t;
          for (int r = 0; r < o.decode_steps; ++r) t.push_back(timed_forward(*be, b, logits));
          const double med = median(t);
          const double weight_bytes = double(cnt.linear_bytes + cnt.norm_bytes + cnt.lm_head_bytes) + double(B) * cnt.embed_row_bytes;
          const double kv_read = double(B) * (o.context + 1) * cnt.kv_bytes_per_token;
          const double kv_write = double(B) * cnt.kv_bytes_per_token;
          const double bytes = weight_bytes + kv_read + kv_write;
          const double floor_s = std::isfinite(bw) ? bytes / (bw * 1e9) : NAN;
          row.set("steps", o.decode_steps);
          row.set("median_ms", med * 1e3);
          row.set("min_ms", *std::min_element(t.begin(), t.end()) * 1e3);
          row.set("mean_ms", mean(t) * 1e3);
          row.set("tokens_per_s", B / med);
          row.set("weight_bytes", weight_bytes);
          row.set("kv_bytes_read", kv_read);
          row.set("bytes", bytes);
          row.set("achieved_GBps", bytes / med / 1e9);
          row.set("floor_ms", floor_s * 1e3);
          row.set("pct_of_floor", 100.0 * floor_s / med);
          row.set("flops", 2.0 * B * (double(cnt.linear_params) + double(V) * cfg.hidden_size) +
                               4.0 * B * cfg.num_heads * cfg.head_dim * double(o.context + 1) * cfg.num_layers);
          row.set("note", "wall time of Backend::forward: includes the metadata upload and the copy of B logits rows "
                          "(B x 128 KB) to the host, as in the engine");
          decode_rows.push(row);
          phases.set("decode", decode_rows);
          save();
          std::printf("decode batch %3d, ctx %d: %8.3f ms/step  %8.1f tok/s  floor %.3f ms  %5.1f%% of floor\n", B,
                      o.context, med * 1e3, B / med, floor_s * 1e3, 100.0 * floor_s / med);
          std::fflush(stdout);
        }
        phases.set("decode", decode_rows);
      } catch (const std::exception& e) {
        fail("decode", e.what());
      }
      save();
    }

    // kv capacity under the A10G-like budget
    if (be && has("kv")) {
      try {
        KvCacheSpec spec;
        spec.block_size = bs;
        spec.gpu_memory.budget = kv_budget;
        const int blocks = be->allocate_kv_cache(spec);
        const int conv_blocks = (960 + 80 + bs - 1) / bs;
        Json k = Json::obj();
        k.set("gpu_memory_budget", kv_budget);
        k.set("block_size", bs);
        k.set("blocks", blocks);
        k.set("tokens", static_cast<int64_t>(blocks) * bs);
        k.set("kv_bytes_per_block", be->kv_bytes_per_block());
        k.set("kv_bytes", static_cast<int64_t>(blocks) * be->kv_bytes_per_block());
        k.set("conversation_tokens", 960 + 80);
        k.set("concurrent_conversations", blocks / conv_blocks);
        k.set("note", "the pool the CUDA backend sizes for this budget in this process (weights, the step buffers "
                      "of 256 sequences and 2048 tokens, CUDA context, cuBLASLt workspace already allocated)");
        phases.set("kv", k);
        std::printf("kv at budget %.2f GiB: %d blocks = %lld tokens = %d conversations of 960+80 tokens\n", kv_budget / 1073741824.0,
                    blocks, static_cast<long long>(blocks) * bs, blocks / conv_blocks);
      } catch (const std::exception& e) {
        fail("kv", e.what());
      }
      save();
    }
  }  // the bench backend is gone: the engine gets the whole GPU

  // --- workload ---
  Json levels = Json::arr();
  if (has("workload")) {
    try {
      Json w = Json::obj();
      int max_len = 0;
      double sum_p = 0, sum_o = 0;
      for (const TraceEntry& e : trace) { max_len = std::max(max_len, e.prompt + e.output); sum_p += e.prompt; sum_o += e.output; }
      w.set("trace", trace_source);
      w.set("trace_requests", static_cast<int>(trace.size()));
      w.set("trace_mean_prompt_tokens", sum_p / trace.size());
      w.set("trace_mean_output_tokens", sum_o / trace.size());
      w.set("requests_per_level", "max(" + std::to_string(o.min_requests) + ", " + std::to_string(o.requests_per_user) +
                                      " x users), one cursor over the trace across levels");
      w.set("sampling", "greedy, ignore_eos, exactly output_tokens new tokens");
      EngineOptions eo;
      eo.backend = "cuda";
      eo.kv.gpu_memory = gpu_memory;
      eo.max_model_len = std::max(2048, max_len);
      w.set("max_num_seqs", eo.max_num_seqs);
      w.set("max_num_batched_tokens", eo.max_num_batched_tokens);
      w.set("max_model_len", eo.max_model_len);
      w.set("prefix_caching", eo.enable_prefix_caching);
      const auto t0 = Clock::now();
      WorkloadRunner runner(weights, eo);
      w.set("engine_create_s", seconds_since(t0));
      const EngineStats st = runner.engine().stats();
      w.set("kv_blocks", st.num_blocks_total);
      phases.set("workload", w);
      save();
      int max_users = 1;
      for (int n : o.users) max_users = std::max(max_users, n);
      const int warm = std::min(8, max_users);
      const auto deadline = o.time_limit_s > 0
                                ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.time_limit_s))
                                : Clock::time_point::max();
      const Level wl = runner.run(trace, uint64_t(1) << 30, warm, warm, 8, deadline);  // unmeasured warm-up
      w.set("warmup", level_json(wl));
      uint64_t k = 0;
      std::printf("%-6s %9s %12s %10s %10s %10s %7s\n", "users", "req/s", "out tok/s", "latency s", "TTFT s", "TPOT ms",
                  "errors");
      for (int n : o.users) {
        const int count = std::max(o.min_requests, o.requests_per_user * n);
        if (over_time()) {
          Json s = Json::obj();
          s.set("users", n);
          s.set("skipped", "time limit");
          levels.push(s);
          continue;
        }
        const Level lv = runner.run(trace, k, n, count, 0, deadline);
        k += static_cast<uint64_t>(count);
        levels.push(level_json(lv));
        w.set("levels", levels);
        phases.set("workload", w);
        save();
        std::printf("%-6d %9.2f %12.1f %10.3f %10.3f %10.2f %7d\n", n, lv.rps, lv.out_tok_s, lv.mean_latency_s,
                    lv.mean_ttft_s, lv.mean_tpot_s * 1e3, lv.errors);
        std::fflush(stdout);
        if (lv.errors > 0) ++failures;
      }
      w.set("levels", levels);
      phases.set("workload", w);
    } catch (const std::exception& e) {
      fail("workload", e.what());
    }
    save();
  }
  R.set("ok", Json::boolean(failures == 0));
  save();
  std::printf("gyre_bench: done in %.1f s, %d failure(s)%s%s\n", seconds_since(start), failures,
              o.json_path.empty() ? "" : "; JSON: ", o.json_path.c_str());
  return failures == 0 ? 0 : 1;
}
}  // namespace
#endif  // GYRE_HAVE_CUDA

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  try {
    shape_config(o.shape);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: --shape: %s\n", e.what());
    return 2;
  }
  std::vector<TraceEntry> trace;
  std::string trace_source;
  try {
    if (!o.trace_path.empty()) {
      trace = read_trace(o.trace_path);
      trace_source = o.trace_path;
    } else {
      trace = generate_trace(o.trace_seed, o.trace_size);
      trace_source = "built-in generator, seed " + std::to_string(o.trace_seed);
    }
    if (!o.write_trace_path.empty()) write_trace(o.write_trace_path, trace);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: %s\n", e.what());
    return 1;
  }
  if (o.phases.empty() || o.phases == "none") return 0;  // only the trace was asked for
#ifdef GYRE_HAVE_CUDA
  try {
    return run(o, trace, trace_source);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gyre_bench: %s\n", e.what());
    return 1;
  }
#else
  std::fprintf(stderr, "gyre_bench: this build has no CUDA backend (nvcc was not found at build time); "
                       "the benchmark needs a CUDA GPU\n");
  return 2;
#endif
}
