#include "phases.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gyre/backend.h"
#include "trace.h"

namespace gyre_bench {
namespace {

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

constexpr int kBlockSize = 16;

// One sequence's chunk of T tokens from position 0, for each --prefill-chunks T.
void prefill(Bench& b, const Model& m, Backend& be, const Layout& Lp) {
  const int V = m.cfg.vocab_size;
  std::vector<float> logits;
  Json prefill_rows = Json::arr();
  try {
    for (int T : b.o.prefill_chunks) {
      if (b.over_time()) { Json s = Json::obj(); s.set("tokens", T); s.set("skipped", "time limit"); prefill_rows.push(s); continue; }
      const Batch batch = make_batch(Lp, {{0, 0, T}}, V, 777);
      timed_forward(be, batch, logits);  // warm-up
      std::vector<double> t;
      for (int r = 0; r < b.o.prefill_reps; ++r) t.push_back(timed_forward(be, batch, logits));
      const double med = median(t);
      const double lin = linear_flops(m.cfg, T), head = 2.0 * V * m.cfg.hidden_size, att = attention_flops(m.cfg, T);
      Json row = Json::obj();
      row.set("tokens", T);
      row.set("reps", b.o.prefill_reps);
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
      b.phases.set("prefill", prefill_rows);
      b.save();
      std::printf("prefill %5d tokens: %8.2f ms  %9.0f tok/s  linear %.1f TFLOP/s\n", T, med * 1e3, T / med,
                  lin / med / 1e12);
      std::fflush(stdout);
    }
    b.phases.set("prefill", prefill_rows);
  } catch (const std::exception& e) {
    b.fail("prefill", e.what());
  }
  b.save();
}

// Decode steps of B tokens over --context cached tokens, for each --decode-batches B up to maxB
// (the largest whose KV pool fits).
void decode(Bench& b, const Model& m, Backend& be, const Layout& Ld, int maxB, double bw) {
  const int V = m.cfg.vocab_size;
  std::vector<float> logits;
  Json decode_rows = Json::arr();
  try {
    // Contexts: --context tokens for each of maxB sequences, in chunks of <= 2048 tokens.
    const auto t0 = Clock::now();
    const int per = std::max(1, 2048 / b.o.context);
    for (int s = 0; s < maxB; s += per) {
      std::vector<Piece> pieces;
      for (int q = s; q < std::min(maxB, s + per); ++q) pieces.push_back({q, 0, b.o.context});
      std::vector<float> lg;
      timed_forward(be, make_batch(Ld, pieces, V, 1000), lg);
    }
    b.root.set("decode_context_prefill_s", seconds_since(t0));
    for (int B : b.o.decode_batches) {
      Json row = Json::obj();
      row.set("batch", B);
      row.set("context", b.o.context);
      if (B > maxB) { row.set("skipped", "the KV pool for this batch does not fit"); decode_rows.push(row); continue; }
      if (b.over_time()) { row.set("skipped", "time limit"); decode_rows.push(row); continue; }
      std::vector<Piece> pieces;
      for (int s = 0; s < B; ++s) pieces.push_back({s, b.o.context, 1});
      const Batch batch = make_batch(Ld, pieces, V, 2000);
      for (int w = 0; w < 3; ++w) timed_forward(be, batch, logits);
      std::vector<double> t;
      for (int r = 0; r < b.o.decode_steps; ++r) t.push_back(timed_forward(be, batch, logits));
      const double med = median(t);
      const double weight_bytes = double(m.counts.linear_bytes + m.counts.norm_bytes + m.counts.lm_head_bytes) + double(B) * m.counts.embed_row_bytes;
      const double kv_read = double(B) * (b.o.context + 1) * m.counts.kv_bytes_per_token;
      const double kv_write = double(B) * m.counts.kv_bytes_per_token;
      const double bytes = weight_bytes + kv_read + kv_write;
      const double floor_s = std::isfinite(bw) ? bytes / (bw * 1e9) : NAN;
      row.set("steps", b.o.decode_steps);
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
      row.set("flops", 2.0 * B * (double(m.counts.linear_params) + double(V) * m.cfg.hidden_size) +
                           4.0 * B * m.cfg.num_heads * m.cfg.head_dim * double(b.o.context + 1) * m.cfg.num_layers);
      row.set("note", "wall time of Backend::forward: includes the metadata upload and the copy of B logits rows "
                      "(B x 128 KB) to the host, as in the engine");
      decode_rows.push(row);
      b.phases.set("decode", decode_rows);
      b.save();
      std::printf("decode batch %3d, ctx %d: %8.3f ms/step  %8.1f tok/s  floor %.3f ms  %5.1f%% of floor\n", B,
                  b.o.context, med * 1e3, B / med, floor_s * 1e3, 100.0 * floor_s / med);
      std::fflush(stdout);
    }
    b.phases.set("decode", decode_rows);
  } catch (const std::exception& e) {
    b.fail("decode", e.what());
  }
  b.save();
}

// The pool the backend sizes for a budget of --kv-budget.
void kv_capacity(Bench& b, Backend& be, int64_t kv_budget) {
  const int bs = kBlockSize;
  try {
    KvCacheSpec spec;
    spec.block_size = bs;
    spec.gpu_memory.budget = kv_budget;
    const int blocks = be.allocate_kv_cache(spec);
    const int conv_blocks = (960 + 80 + bs - 1) / bs;
    Json k = Json::obj();
    k.set("gpu_memory_budget", kv_budget);
    k.set("block_size", bs);
    k.set("blocks", blocks);
    k.set("tokens", static_cast<int64_t>(blocks) * bs);
    k.set("kv_bytes_per_block", be.kv_bytes_per_block());
    k.set("kv_bytes", static_cast<int64_t>(blocks) * be.kv_bytes_per_block());
    k.set("conversation_tokens", 960 + 80);
    k.set("concurrent_conversations", blocks / conv_blocks);
    k.set("note", "the pool the CUDA backend sizes for this budget in this process (weights, the step buffers "
                  "of 256 sequences and 2048 tokens, CUDA context, cuBLASLt workspace already allocated)");
    b.phases.set("kv", k);
    std::printf("kv at budget %.2f GiB: %d blocks = %lld tokens = %d conversations of 960+80 tokens\n", kv_budget / 1073741824.0,
                blocks, static_cast<long long>(blocks) * bs, blocks / conv_blocks);
  } catch (const std::exception& e) {
    b.fail("kv", e.what());
  }
  b.save();
}

}  // namespace

void bench_backend(Bench& b, const Model& m, double bw, const GpuMemoryOptions& gpu_memory, int64_t kv_budget) {
  const std::vector<int> batches = b.has("decode") ? b.o.decode_batches : std::vector<int>{};
  const std::vector<int> chunks = b.has("prefill") ? b.o.prefill_chunks : std::vector<int>{};
  if (b.has("prefill") || b.has("decode") || b.has("kv")) {
    std::unique_ptr<Backend> be;
    try {
      const auto t0 = Clock::now();
      be = make_backend("cuda", m.weights);
      b.root.set("backend_create_s", seconds_since(t0));
    } catch (const std::exception& e) {
      b.fail("backend", e.what());
    }
    const int bs = kBlockSize;
    Layout Ld{bs, (b.o.context + 1 + bs - 1) / bs};
    int maxT = 0;
    for (int T : chunks) maxT = std::max(maxT, T);
    Layout Lp{bs, std::max(1, (maxT + bs - 1) / bs)};
    std::vector<int> fit_batches = batches;
    std::sort(fit_batches.begin(), fit_batches.end());
    if (be && (b.has("prefill") || b.has("decode"))) {
      // A pool for the largest batch's contexts (and the longest prefill chunk); smaller if it does not fit.
      for (;;) {
        const int maxB = fit_batches.empty() ? 0 : fit_batches.back();
        KvCacheSpec spec;
        spec.block_size = bs;
        spec.gpu_memory = gpu_memory;
        spec.num_blocks = std::max({1, maxB * Ld.blocks_per_seq, Lp.blocks_per_seq});
        try {
          be->allocate_kv_cache(spec);
          b.root.set("kv_blocks_for_bench", spec.num_blocks);
          break;
        } catch (const std::exception& e) {
          if (fit_batches.size() <= 1) { b.fail("kv_pool", e.what()); be.reset(); break; }
          std::fprintf(stderr, "gyre_bench: KV for batch %d does not fit (%s); trying smaller\n", maxB, e.what());
          fit_batches.pop_back();
        }
      }
    }
    if (be && b.has("prefill")) prefill(b, m, *be, Lp);
    if (be && b.has("decode")) decode(b, m, *be, Ld, fit_batches.empty() ? 0 : fit_batches.back(), bw);
    if (be && b.has("kv")) kv_capacity(b, *be, kv_budget);
  }  // the bench backend is gone: the engine gets the whole GPU
}

}  // namespace gyre_bench
