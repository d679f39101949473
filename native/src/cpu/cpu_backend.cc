#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "gyre/error.h"

namespace gyre {

static std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  TensorView row = t;
  row.shape = {1, t.numel()};
  load_row_f32(row, 0, out.data());
  return out;
}

CpuBackend::CpuBackend(std::shared_ptr<ModelWeights> weights, int num_threads)
    : w_(std::move(weights)), pool_(num_threads) {
  for (const auto& l : w_->layers) {
    input_norm_.push_back(to_f32(l.input_norm));
    post_norm_.push_back(to_f32(l.post_norm));
  }
  final_norm_ = to_f32(w_->final_norm);
  for (const auto& l : w_->layers) {
    layers_.push_back(Layer{PackedLinear({&l.wq, &l.wk, &l.wv}, {&l.wq_scale, &l.wk_scale, &l.wv_scale}),
                            PackedLinear({&l.wo}, {&l.wo_scale}),
                            PackedLinear({&l.w_gate, &l.w_up}, {&l.w_gate_scale, &l.w_up_scale}),
                            PackedLinear({&l.w_down}, {&l.w_down_scale})});
  }
  lm_head_ = PackedLinear({&w_->lm_head}, {&w_->lm_head_scale});
  rope_.init(w_->config);
}

int64_t CpuBackend::kv_bytes_per_block() const {
  const auto& c = w_->config;
  return 2LL * c.num_layers * block_size_ * c.num_kv_heads * c.head_dim * static_cast<int64_t>(sizeof(float));
}

int CpuBackend::allocate_kv_cache(const KvCacheSpec& spec) {
  const auto& c = w_->config;
  if (spec.block_size <= 0) throw Error("KV cache: block_size must be positive");
  block_size_ = spec.block_size;
  int64_t blocks = spec.num_blocks;
  if (blocks <= 0 && spec.max_tokens > 0) blocks = (spec.max_tokens + block_size_ - 1) / block_size_;
  if (blocks <= 0 && spec.max_bytes > 0) blocks = spec.max_bytes / kv_bytes_per_block();
  if (blocks <= 0) blocks = std::max<int64_t>(64, (int64_t{1} << 30) / kv_bytes_per_block());  // 1 GiB default
  num_blocks_ = static_cast<int>(blocks);
  const size_t per_layer = static_cast<size_t>(blocks) * block_size_ * c.num_kv_heads * c.head_dim;
  k_cache_.clear();
  v_cache_.clear();
  for (int l = 0; l < c.num_layers; ++l) {
    // Pages are touched only when written. Small pages: on 2 MiB pages, zeroing fresh pages as
    // sequences reached new blocks took ~6 % of serving's CPU samples, ~3 % on 4 KiB pages.
    k_cache_.emplace_back(new float[per_layer]);
    v_cache_.emplace_back(new float[per_layer]);
  }
  return num_blocks_;
}

void CpuBackend::linear(const float* x, int T, int ldx, const PackedLinear& w, float* y, int ldy) {
  const int64_t work_per_panel = static_cast<int64_t>(T) * w.in_features() * PackedLinear::kPanel;
  const int64_t min_panels = std::max<int64_t>(2, 2 * 65536 / work_per_panel);
  // Chunks of 4 panels: whole 4-panel tiles of the one-token kernel.
  pool_.parallel_for(w.num_panels(), [&](int64_t b, int64_t e) { w.run(x, T, ldx, y, ldy, b, e); }, 4, min_panels);
}

// Attention work items: one sequence, one KV head, a run of consecutive tokens of that sequence
// (all query heads of the KV head at each), sized so that the rows share each K/V tile loaded.
// Items go to threads in contiguous runs of about equal cost (rows x keys); a row's result does
// not depend on its item or thread.
void CpuBackend::attention(const Batch& b, int layer, const float* q, int ldq, float* out) {
  const auto& c = w_->config;
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim, block_size_, c.sliding_window};
  const int nh = c.num_heads, d = c.head_dim, group = c.num_heads / c.num_kv_heads;
  constexpr int kRowsPerItem = 32;
  const int span = std::max(1, kRowsPerItem / group);  // tokens per item
  std::vector<AttentionItem>& items = attn_items_;
  std::vector<int64_t>& cost = attn_cost_;  // prefix sums
  std::vector<size_t>& bounds = attn_bounds_;
  items.clear();
  cost.assign(1, 0);
  for (int s = 0; s < b.num_seqs(); ++s)
    for (int t = b.query_start[s]; t < b.query_start[s + 1]; t += span) {
      const int e = std::min(t + span, b.query_start[s + 1]);
      int lo = b.positions[t], hi = b.positions[t];
      for (int u = t; u < e; ++u) lo = std::min(lo, b.positions[u]), hi = std::max(hi, b.positions[u]);
      if (c.sliding_window > 0) lo = std::max(0, lo - c.sliding_window + 1);
      else lo = 0;
      const int64_t keys = hi - lo + 1 + kAttentionKeyTile;  // + per-tile overhead, roughly
      for (int kvh = 0; kvh < c.num_kv_heads; ++kvh) {
        items.push_back({s, kvh, t, e});
        cost.push_back(cost.back() + static_cast<int64_t>(e - t) * group * keys);
      }
    }
  const int64_t total = cost.back();
  // Below ~64k multiply-adds a second thread costs more than it saves.
  const int parts = total * d < 65536 ? 1 : pool_.num_threads();
  bounds.assign(parts + 1, items.size());
  bounds[0] = 0;
  for (int k = 1; k < parts; ++k)
    bounds[k] = std::lower_bound(cost.begin(), cost.end(), total * k / parts) - cost.begin();
  const float* kc = k_cache_[layer].get();
  const float* vc = v_cache_[layer].get();
  pool_.parallel_for(parts, [&](int64_t pb, int64_t pe) {
    thread_local std::vector<const float*> q_rows;
    thread_local std::vector<float*> out_rows;
    thread_local std::vector<int32_t> pos;
    for (size_t i = bounds[pb]; i < bounds[pe]; ++i) {
      const AttentionItem& it = items[i];
      q_rows.clear(); out_rows.clear(); pos.clear();
      for (int t = it.t_begin; t < it.t_end; ++t)
        for (int h = it.kv_head * group; h < (it.kv_head + 1) * group; ++h) {
          q_rows.push_back(q + static_cast<int64_t>(t) * ldq + static_cast<int64_t>(h) * d);
          out_rows.push_back(out + (static_cast<int64_t>(t) * nh + h) * d);
          pos.push_back(b.positions[t]);
        }
      const int32_t* table = b.block_tables.data() + static_cast<size_t>(it.seq) * b.max_blocks_per_seq;
      attend_rows(shape, it.kv_head, table, kc, vc, static_cast<int>(q_rows.size()), q_rows.data(), pos.data(),
                  out_rows.data());
    }
  }, 1, 1);
}

void CpuBackend::forward(const Batch& b, float* logits) {
  const auto& c = w_->config;
  const int T = b.num_tokens();
  if (T == 0) return;
  if (num_blocks_ == 0) throw Error("forward: the KV cache is not allocated");
  const int H = c.hidden_size, I = c.intermediate_size, d = c.head_dim;
  const int QO = c.num_heads * d, KVO = c.num_kv_heads * d, QKV = QO + 2 * KVO;
  auto grow = [](std::vector<float>& v, size_t n) { if (v.size() < n) v.resize(n); };
  grow(h_, size_t(T) * H); grow(x_, size_t(T) * H); grow(tmp_, size_t(T) * H);
  grow(qkv_, size_t(T) * QKV); grow(attn_, size_t(T) * QO); grow(gate_up_, size_t(T) * 2 * I);

  for (int t = 0; t < T; ++t) {
    const int id = b.token_ids[t];
    if (id < 0 || id >= c.vocab_size) throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary");
    load_row_f32(w_->embed, id, h_.data() + size_t(t) * H);
  }
  rope_.compute(c, b.positions.data(), T);
  const int half = d / 2;
  // The residual of the last linear (tmp_) is added to h_ in the same pass as the next RMSNorm,
  // which saves a pass over [T, H] and a serial loop per residual; the sums are the same.
  bool residual_pending = false;
  auto add_norm = [&](const float* weight) {
    pool_.parallel_for(T, [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; ++t) {
        float* h = &h_[t * H];
        if (residual_pending) {
          const float* r = &tmp_[t * H];
          for (int i = 0; i < H; ++i) h[i] += r[i];
        }
        rms_norm_row(h, weight, H, c.rms_norm_eps, &x_[t * H]);
      }
    }, 1, 16);
    residual_pending = false;
  };

  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    add_norm(input_norm_[l].data());
    linear(x_.data(), T, H, L.qkv, qkv_.data(), QKV);
    float* kc = k_cache_[l].get();
    float* vc = v_cache_[l].get();
    pool_.parallel_for(T, [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; ++t) {
        float* q = &qkv_[t * QKV];
        const float* cs = rope_.cos.data() + t * half;
        const float* sn = rope_.sin.data() + t * half;
        apply_rope(q, c.num_heads, d, cs, sn);
        apply_rope(q + QO, c.num_kv_heads, d, cs, sn);
        const int64_t slot = b.slot_mapping[t];
        std::memcpy(kc + slot * KVO, q + QO, sizeof(float) * KVO);
        std::memcpy(vc + slot * KVO, q + QO + KVO, sizeof(float) * KVO);
      }
    }, 1, 16);
    attention(b, l, qkv_.data(), QKV, attn_.data());
    linear(attn_.data(), T, QO, L.o, tmp_.data(), H);
    residual_pending = true;

    add_norm(post_norm_[l].data());
    linear(x_.data(), T, H, L.gate_up, gate_up_.data(), 2 * I);
    pool_.parallel_for(T, [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; ++t) silu_mul(&gate_up_[size_t(t) * 2 * I], &gate_up_[size_t(t) * 2 * I + I], I);
    }, 1, 2);
    linear(gate_up_.data(), T, 2 * I, L.down, tmp_.data(), H);
    residual_pending = true;
  }

  const int R = static_cast<int>(b.logits_indices.size());
  if (R == 0) return;
  grow(sel_, size_t(R) * H);
  grow(row_, size_t(H));
  for (int r = 0; r < R; ++r) {  // only the rows that give logits need the last residual
    const size_t t = size_t(b.logits_indices[r]) * H;
    for (int i = 0; i < H; ++i) row_[i] = h_[t + i] + tmp_[t + i];
    rms_norm_row(row_.data(), final_norm_.data(), H, c.rms_norm_eps, &sel_[size_t(r) * H]);
  }
  linear(sel_.data(), R, H, lm_head_, logits, c.vocab_size);
}

}  // namespace gyre
