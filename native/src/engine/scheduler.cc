// Design note (after vLLM v1). There are no prefill and decode phases: every sequence has
// num_computed_tokens chasing num_tokens (prompt + generated), and each step hands out a token
// budget. Running sequences go first, oldest first: a decoding one takes 1 token, one still in a
// chunked prefill takes what is left of its prompt, up to the budget. Then waiting sequences are
// admitted FCFS, taking their prefix-cache hit for free and a chunk of the rest of the budget, so
// a long prompt never stalls the running streams for a whole prefill.
//
// Memory is check-then-act: when a running sequence cannot get its blocks, the NEWEST running
// sequence is preempted (blocks freed, num_computed_tokens = 0, back to the front of the queue)
// and recomputed later, generated tokens included; those are never emitted twice because only
// a chunk that reaches num_tokens samples. A step that preempts admits nobody.
#include "engine/scheduler.h"

#include <algorithm>

namespace gyre {

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& block_manager)
    : config_(config), block_manager_(block_manager) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  waiting_.push_back(seq.get());
  sequences_.push_back(std::move(seq));
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;

  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* seq = running_[i];
    if (seq->awaiting_mask) {  // sampled once its mask comes; nothing to compute until then
      ++i;
      continue;
    }
    const int num_new = std::min(seq->num_tokens() - seq->num_computed_tokens, budget);
    block_manager_.release_outside_window(seq->kv, seq->num_computed_tokens);
    const int num_tokens_after = seq->num_computed_tokens + num_new;
    bool preempted_self = false;
    while (!block_manager_.can_allocate(seq->kv, {}, num_tokens_after)) {
      Sequence* victim = running_.back();
      preempt(victim, out);
      if (victim == seq) { preempted_self = true; break; }
    }
    if (preempted_self) break;
    block_manager_.allocate(seq->kv, {}, num_tokens_after);
    out.scheduled.push_back({seq, num_new});
    budget -= num_new;
    ++i;
  }

  if (out.preempted.empty()) {
    while (!waiting_.empty() && budget > 0 && num_running() < config_.max_num_seqs) {
      if (!admit(waiting_.front(), budget, out)) break;
      budget -= out.scheduled.back().num_new_tokens;
      running_.push_back(waiting_.front());
      waiting_.pop_front();
    }
  }
  out.num_batched_tokens = config_.max_num_batched_tokens - budget;
  return out;
}

bool Scheduler::admit(Sequence* seq, int budget, SchedulerOutput& out) {
  // Prompt logits need every prompt position computed, so such a sequence skips the cache.
  CachedPrefix prefix = seq->prompt_logits_pending() ? CachedPrefix{} : block_manager_.find_cached_prefix(seq->tokens);
  const int num_cached = static_cast<int>(prefix.block_ids.size()) * block_manager_.block_size();
  const int num_new = std::min(seq->num_tokens() - num_cached, budget);
  if (!block_manager_.can_allocate(seq->kv, prefix, num_cached + num_new)) return false;
  block_manager_.allocate(seq->kv, prefix, num_cached + num_new);
  seq->num_computed_tokens = num_cached;
  block_manager_.release_outside_window(seq->kv, num_cached);
  if (!seq->admitted_once) {
    seq->admitted_once = true;
    seq->num_cached_tokens = std::min(num_cached, seq->num_prompt_tokens);
  }
  out.scheduled.push_back({seq, num_new});
  return true;
}

void Scheduler::preempt(Sequence* seq, SchedulerOutput& out) {
  block_manager_.free(seq->kv);
  seq->num_computed_tokens = 0;
  seq->awaiting_mask = false;  // the recompute gives the same row again
  seq->held_logits.clear();
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  waiting_.push_front(seq);
  out.preempted.push_back(seq);
  ++num_preemptions_;
}

void Scheduler::build_batch(SchedulerOutput& out, Batch& batch) const {
  batch.clear();
  const int block_size = block_manager_.block_size();
  for (const ScheduledSeq& s : out.scheduled)
    batch.max_blocks_per_seq = std::max(batch.max_blocks_per_seq, static_cast<int>(s.seq->kv.block_ids.size()));

  for (ScheduledSeq& s : out.scheduled) {
    const Sequence& seq = *s.seq;
    const int first = seq.num_computed_tokens;
    const int end = first + s.num_new_tokens;
    const int row0 = batch.num_tokens();
    for (int p = first; p < end; ++p) {
      batch.token_ids.push_back(seq.tokens[p]);
      batch.positions.push_back(p);
      batch.slot_mapping.push_back(static_cast<int64_t>(seq.kv.block_ids[p / block_size]) * block_size + p % block_size);
    }
    batch.query_start.push_back(batch.num_tokens());
    batch.context_lens.push_back(end);
    batch.block_tables.insert(batch.block_tables.end(), seq.kv.block_ids.begin(), seq.kv.block_ids.end());
    batch.block_tables.resize(batch.block_tables.size() + batch.max_blocks_per_seq - seq.kv.block_ids.size(), -1);

    s.sample_row = -1;
    s.first_prompt_row = -1;
    s.num_prompt_rows = 0;
    if (seq.prompt_logits_pending()) {
      const int from = std::max(first, seq.num_prompt_logits_rows);
      const int to = std::min(end, seq.num_prompt_tokens);
      if (from == seq.num_prompt_logits_rows && to > from) {
        s.first_prompt_row = static_cast<int>(batch.logits_indices.size());
        s.num_prompt_rows = to - from;
        for (int p = from; p < to; ++p) batch.logits_indices.push_back(row0 + p - first);
      }
    }
    if (end == seq.num_tokens()) {
      const int last = end - 1;
      if (s.num_prompt_rows > 0 && last < seq.num_prompt_logits_rows + s.num_prompt_rows) {
        s.sample_row = s.first_prompt_row + (last - seq.num_prompt_logits_rows);  // shared row
      } else {
        s.sample_row = static_cast<int>(batch.logits_indices.size());
        batch.logits_indices.push_back(row0 + last - first);
      }
    }
  }
}

void Scheduler::update_computed(const SchedulerOutput& out) {
  for (const ScheduledSeq& s : out.scheduled) {
    s.seq->num_computed_tokens += s.num_new_tokens;
    block_manager_.cache_full_blocks(s.seq->kv, s.seq->tokens, s.seq->num_computed_tokens);
  }
}

std::unique_ptr<Sequence> Scheduler::remove(uint64_t id) {
  auto owner = std::find_if(sequences_.begin(), sequences_.end(), [&](const auto& s) { return s->id == id; });
  if (owner == sequences_.end()) return nullptr;
  Sequence* seq = owner->get();
  block_manager_.free(seq->kv);
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq), waiting_.end());
  std::unique_ptr<Sequence> taken = std::move(*owner);
  sequences_.erase(owner);
  return taken;
}

std::vector<uint64_t> Scheduler::sequence_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& seq : sequences_) ids.push_back(seq->id);
  return ids;
}

}  // namespace gyre
