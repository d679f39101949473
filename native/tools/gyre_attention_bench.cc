// The CPU attention kernels on one thread, on a random paged cache, no model:
//   gyre_attention_bench [--heads 12] [--kv-heads 12] [--head-dim 64] [--window 0] [--prompt 512]
//                        [--context 512] [--decode-seqs 16] [--reps 5]
// prefill: one chunk of --prompt tokens (every token attends to the ones before it);
// decode: --decode-seqs sequences of one token at --context. Each is run with attend_one (one
// query row at a time, the kernel before attend_rows) and with attend_rows (rows of one KV head
// and up to 32 / group tokens per call, as the backend forms them), interleaved; prints the
// thread CPU time of the best repetition of each and their ratio as JSON.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cpu/attention.h"

using namespace gyre;

namespace {

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Work {
  AttentionShape shape;
  int seqs, max_blocks;
  std::vector<int32_t> tables;      // [seqs, max_blocks]
  std::vector<float> k, v;          // pool
  std::vector<float> q, out;        // [tokens, nh, d]
  std::vector<int32_t> pos, seq_of; // [tokens]
};

// `seqs` sequences whose last `chunk` tokens of `len` are queries, blocks shuffled in the pool.
Work make_work(const AttentionShape& s, int seqs, int len, int chunk, std::mt19937& rng) {
  Work w{s, seqs, (len + s.block_size - 1) / s.block_size, {}, {}, {}, {}, {}, {}, {}};
  std::vector<int32_t> ids(size_t(seqs) * w.max_blocks);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), rng);
  w.tables = ids;
  std::normal_distribution<float> n(0.0f, 1.0f);
  const size_t slots = ids.size() * s.block_size * s.num_kv_heads * s.head_dim;
  w.k.resize(slots);
  w.v.resize(slots);
  for (auto& x : w.k) x = n(rng);
  for (auto& x : w.v) x = n(rng);
  for (int q = 0; q < seqs; ++q)
    for (int t = len - chunk; t < len; ++t) w.pos.push_back(t), w.seq_of.push_back(q);
  w.q.resize(w.pos.size() * s.num_heads * s.head_dim);
  for (auto& x : w.q) x = n(rng);
  w.out.resize(w.q.size());
  return w;
}

void run_one(Work& w) {
  const int nh = w.shape.num_heads, d = w.shape.head_dim, group = nh / w.shape.num_kv_heads;
  std::vector<float> scores(*std::max_element(w.pos.begin(), w.pos.end()) + 1);
  for (size_t t = 0; t < w.pos.size(); ++t)
    for (int h = 0; h < nh; ++h)
      attend_one(w.shape, &w.q[(t * nh + h) * d], h / group, w.pos[t], &w.tables[size_t(w.seq_of[t]) * w.max_blocks],
                 w.k.data(), w.v.data(), scores.data(), &w.out[(t * nh + h) * d]);
}

void run_rows(Work& w) {
  const int nh = w.shape.num_heads, d = w.shape.head_dim, group = nh / w.shape.num_kv_heads;
  const int span = std::max(1, 32 / group);
  std::vector<const float*> q;
  std::vector<float*> o;
  std::vector<int32_t> p;
  const int T = static_cast<int>(w.pos.size());
  for (int t = 0; t < T;) {
    int e = t;
    while (e < T && e - t < span && w.seq_of[e] == w.seq_of[t]) ++e;
    for (int kvh = 0; kvh < w.shape.num_kv_heads; ++kvh) {
      q.clear(), o.clear(), p.clear();
      for (int u = t; u < e; ++u)
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
          q.push_back(&w.q[(size_t(u) * nh + h) * d]);
          o.push_back(&w.out[(size_t(u) * nh + h) * d]);
          p.push_back(w.pos[u]);
        }
      attend_rows(w.shape, kvh, &w.tables[size_t(w.seq_of[t]) * w.max_blocks], w.k.data(), w.v.data(),
                  static_cast<int>(q.size()), q.data(), p.data(), o.data());
    }
    t = e;
  }
}

// Best thread CPU seconds of `reps` runs of each, interleaved.
std::pair<double, double> compare(Work& w, int reps) {
  double a = 1e30, b = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = thread_cpu_s();
    run_one(w);
    double t1 = thread_cpu_s();
    run_rows(w);
    double t2 = thread_cpu_s();
    a = std::min(a, t1 - t0);
    b = std::min(b, t2 - t1);
  }
  return {a, b};
}

}  // namespace

int main(int argc, char** argv) {
  int nh = 12, nkv = 12, d = 64, window = 0, prompt = 512, context = 512, decode_seqs = 16, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--heads") nh = v;
    else if (a == "--kv-heads") nkv = v;
    else if (a == "--head-dim") d = v;
    else if (a == "--window") window = v;
    else if (a == "--prompt") prompt = v;
    else if (a == "--context") context = v;
    else if (a == "--decode-seqs") decode_seqs = v;
    else if (a == "--reps") reps = v;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0 || d <= 0 || prompt <= 0 || context <= 0 || decode_seqs <= 0 || reps <= 0) {
    std::fprintf(stderr, "gyre_attention_bench: heads must be a positive multiple of kv-heads; sizes positive\n");
    return 2;
  }
  const AttentionShape shape{nh, nkv, d, 16, window};
  std::mt19937 rng(0);
  Work pre = make_work(shape, 1, prompt, prompt, rng);
  Work dec = make_work(shape, decode_seqs, context, 1, rng);
  auto [p1, p2] = compare(pre, reps);
  auto [d1, d2] = compare(dec, reps);
  std::printf("{\"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, \"window\": %d,\n"
              " \"prefill\": {\"tokens\": %d, \"attend_one_ms\": %.2f, \"attend_rows_ms\": %.2f, \"speedup\": %.2f},\n"
              " \"decode\": {\"seqs\": %d, \"context\": %d, \"attend_one_ms\": %.3f, \"attend_rows_ms\": %.3f, \"speedup\": %.2f}}\n",
              nh, nkv, d, window, prompt, 1e3 * p1, 1e3 * p2, p1 / p2, decode_seqs, context, 1e3 * d1, 1e3 * d2, d1 / d2);
  return 0;
}
