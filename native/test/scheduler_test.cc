#include "engine/scheduler.h"

#include <map>
#include <numeric>

#include "check.h"

using namespace gyre;

namespace {

std::unique_ptr<Sequence> make_seq(uint64_t id, int num_prompt, int first_token = 10) {
  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->tokens.resize(num_prompt);
  std::iota(seq->tokens.begin(), seq->tokens.end(), first_token);
  seq->num_prompt_tokens = num_prompt;
  return seq;
}

// One engine step without a model: every sequence whose chunk reaches its end "samples" token 5.
std::map<uint64_t, int> run_step(Scheduler& sched, Batch& batch, SchedulerOutput* out_copy = nullptr) {
  SchedulerOutput out = sched.schedule();
  sched.build_batch(out, batch);
  sched.update_computed(out);
  std::map<uint64_t, int> tokens_per_seq;
  for (const ScheduledSeq& s : out.scheduled) {
    tokens_per_seq[s.seq->id] = s.num_new_tokens;
    if (s.sample_row >= 0) s.seq->tokens.push_back(5);
  }
  if (out_copy) *out_copy = out;
  return tokens_per_seq;
}

}  // namespace

TEST(budget_and_fcfs_chunking) {
  BlockManager bm(64, 4);
  Scheduler sched({8, 16}, bm);
  sched.add(make_seq(1, 10, 100));
  sched.add(make_seq(2, 10, 200));
  sched.add(make_seq(3, 10, 300));  // distinct prompts: no prefix-cache hits
  Batch batch;
  auto step = run_step(sched, batch);
  CHECK_EQ(step.size(), 2u);
  CHECK_EQ(step[1], 10);  // first come, whole prompt
  CHECK_EQ(step[2], 6);   // the rest of the budget
  CHECK_EQ(batch.num_tokens(), 16);
  CHECK_EQ(sched.num_running(), 2);
  CHECK_EQ(sched.num_waiting(), 1);
  // Decode first (1), then seq 2's remaining 4, then seq 3 gets the rest: 16 - 5 = 11 >= 10.
  step = run_step(sched, batch);
  CHECK_EQ(step[1], 1);
  CHECK_EQ(step[2], 4);
  CHECK_EQ(step[3], 10);
  CHECK_EQ(batch.num_tokens(), 15);
}

TEST(long_prefill_is_chunked_while_others_decode) {
  BlockManager bm(128, 16);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 5));
  sched.add(make_seq(2, 5));
  Batch batch;
  run_step(sched, batch);  // both prefilled, both sampled
  sched.add(make_seq(3, 900));
  int num_prefilled = 0, num_steps = 0;
  while (num_prefilled < 900) {
    auto step = run_step(sched, batch);
    ++num_steps;
    CHECK_EQ(step[1], 1);  // the running streams never stall
    CHECK_EQ(step[2], 1);
    CHECK(step[3] <= 62);
    CHECK(batch.num_tokens() <= 64);
    num_prefilled += step[3];
  }
  CHECK_EQ(num_steps, (900 + 61) / 62);
  auto step = run_step(sched, batch);
  CHECK_EQ(step[3], 1);  // now decoding
}

TEST(batch_layout) {
  BlockManager bm(16, 4);
  Scheduler sched({8, 100}, bm);
  sched.add(make_seq(1, 6, 100));
  sched.add(make_seq(2, 3, 200));
  Batch batch;
  SchedulerOutput out;
  run_step(sched, batch, &out);
  CHECK_EQ(batch.num_seqs(), 2);
  CHECK_EQ(batch.num_tokens(), 9);
  CHECK_EQ(batch.query_start.size(), 3u);
  CHECK_EQ(batch.query_start[1], 6);
  CHECK_EQ(batch.query_start[2], 9);
  CHECK_EQ(batch.context_lens[0], 6);
  CHECK_EQ(batch.context_lens[1], 3);
  CHECK_EQ(batch.max_blocks_per_seq, 2);
  const std::vector<int32_t>& t1 = sched.running()[0]->kv.block_ids;
  const std::vector<int32_t>& t2 = sched.running()[1]->kv.block_ids;
  CHECK_EQ(batch.block_tables[0], t1[0]);
  CHECK_EQ(batch.block_tables[1], t1[1]);
  CHECK_EQ(batch.block_tables[2], t2[0]);
  CHECK_EQ(batch.block_tables[3], -1);  // padding
  CHECK_EQ(batch.token_ids[5], 105);
  CHECK_EQ(batch.positions[5], 5);
  CHECK_EQ(batch.slot_mapping[5], t1[1] * 4 + 1);
  CHECK_EQ(batch.token_ids[6], 200);
  CHECK_EQ(batch.slot_mapping[6], t2[0] * 4);
  CHECK_EQ(batch.logits_indices.size(), 2u);
  CHECK_EQ(batch.logits_indices[0], 5);
  CHECK_EQ(batch.logits_indices[1], 8);
  CHECK_EQ(out.scheduled[1].sample_row, 1);
  // Decode step: positions continue after the sampled token.
  run_step(sched, batch);
  CHECK_EQ(batch.num_tokens(), 2);
  CHECK_EQ(batch.positions[0], 6);
  CHECK_EQ(batch.token_ids[0], 5);
  CHECK_EQ(batch.context_lens[0], 7);
}

TEST(prompt_logits_rows_cover_every_prompt_position_across_chunks) {
  BlockManager bm(16, 4);
  Scheduler sched({8, 4}, bm);
  auto seq = make_seq(1, 6);
  seq->want_prompt_logits = true;
  Sequence* s = seq.get();
  sched.add(std::move(seq));
  Batch batch;
  SchedulerOutput out;
  run_step(sched, batch, &out);
  CHECK_EQ(batch.logits_indices.size(), 4u);
  CHECK_EQ(out.scheduled[0].num_prompt_rows, 4);
  CHECK_EQ(out.scheduled[0].sample_row, -1);
  s->num_prompt_logits_rows += 4;  // the engine collects them
  run_step(sched, batch, &out);
  CHECK_EQ(batch.logits_indices.size(), 2u);  // positions 4, 5; the last one is shared with sampling
  CHECK_EQ(out.scheduled[0].first_prompt_row, 0);
  CHECK_EQ(out.scheduled[0].num_prompt_rows, 2);
  CHECK_EQ(out.scheduled[0].sample_row, 1);
}

TEST(preempts_newest_and_recomputes) {
  BlockManager bm(6, 4);  // 24 token slots
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 8));  // 2 blocks each
  sched.add(make_seq(2, 8));
  sched.add(make_seq(3, 8));
  Batch batch;
  run_step(sched, batch);  // all 6 blocks taken, each has 9 tokens now
  CHECK_EQ(bm.num_free_blocks(), 0);
  SchedulerOutput out;
  auto step = run_step(sched, batch, &out);
  // Seq 1 needs a third block: seq 3 (newest) is preempted; seq 2 fits in the freed blocks.
  CHECK_EQ(out.preempted.size(), 1u);
  CHECK_EQ(out.preempted[0]->id, 3u);
  CHECK_EQ(sched.num_preemptions(), 1);
  CHECK_EQ(step.size(), 2u);
  CHECK_EQ(step[1], 1);
  CHECK_EQ(step[2], 1);
  CHECK_EQ(sched.num_waiting(), 1);
  Sequence* s3 = out.preempted[0];
  CHECK_EQ(s3->num_computed_tokens, 0);
  CHECK_EQ(s3->num_tokens(), 9);  // its generated token is kept, to be recomputed
  // Finish seq 1 and 2: seq 3 comes back and recomputes its 9 tokens (prefix cache off: 8 hit).
  sched.remove(1);
  sched.remove(2);
  step = run_step(sched, batch, &out);
  CHECK_EQ(out.scheduled.size(), 1u);
  CHECK_EQ(out.scheduled[0].seq, s3);
  // Its first 2 blocks (tokens 10..17) are still in the prefix cache: only token 8 is computed.
  CHECK_EQ(step[3], 1);
  CHECK_EQ(batch.positions[0], 8);
  CHECK_EQ(s3->num_tokens(), 10);  // the chunk reached the end: one new token, not a re-emission
}

TEST(preempted_sequence_recomputes_everything_without_cache) {
  BlockManager bm(6, 4, 0, /*enable_prefix_caching=*/false);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 8));
  sched.add(make_seq(2, 8));
  sched.add(make_seq(3, 8));
  Batch batch;
  run_step(sched, batch);
  run_step(sched, batch);
  sched.remove(1);
  sched.remove(2);
  auto step = run_step(sched, batch);
  CHECK_EQ(step[3], 9);
}

TEST(preempting_self_when_alone_at_the_back) {
  BlockManager bm(4, 4);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 8));
  sched.add(make_seq(2, 8));
  Batch batch;
  run_step(sched, batch);
  CHECK_EQ(bm.num_free_blocks(), 0);
  SchedulerOutput out;
  // Seq 1 preempts seq 2 and runs.
  auto step = run_step(sched, batch, &out);
  CHECK_EQ(out.preempted.size(), 1u);
  CHECK_EQ(step.size(), 1u);
  CHECK_EQ(step[1], 1);
  CHECK_EQ(sched.num_running(), 1);
}

TEST(no_admission_in_a_step_that_preempts_and_fcfs_blocks_behind) {
  BlockManager bm(4, 4);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 12));  // 3 blocks
  Batch batch;
  run_step(sched, batch);
  sched.add(make_seq(2, 8));   // needs 3 blocks with its sampled token later; 2 now, 1 free
  sched.add(make_seq(3, 2));   // would fit in 1 block, but FCFS: it waits behind seq 2
  auto step = run_step(sched, batch);
  CHECK_EQ(step.size(), 1u);
  CHECK_EQ(step[1], 1);
  CHECK_EQ(sched.num_waiting(), 2);
}

TEST(max_num_seqs_caps_running) {
  BlockManager bm(64, 4);
  Scheduler sched({2, 64}, bm);
  for (uint64_t i = 1; i <= 4; ++i) sched.add(make_seq(i, 3));
  Batch batch;
  auto step = run_step(sched, batch);
  CHECK_EQ(step.size(), 2u);
  CHECK_EQ(sched.num_running(), 2);
  CHECK_EQ(sched.num_waiting(), 2);
}

TEST(prefix_hit_starts_computed) {
  BlockManager bm(64, 4);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 10));
  Batch batch;
  run_step(sched, batch);
  sched.add(make_seq(2, 11));  // same first 10 tokens (iota from 10)
  SchedulerOutput out;
  auto step = run_step(sched, batch, &out);
  CHECK_EQ(step[2], 3);  // 8 tokens (2 blocks) from the cache
  CHECK_EQ(out.scheduled[1].seq->num_cached_tokens, 8);
  CHECK_EQ(bm.prefix_hit_tokens(), 8);
  CHECK_EQ(sched.running()[1]->kv.block_ids[0], sched.running()[0]->kv.block_ids[0]);
}

TEST(sliding_window_releases_while_running) {
  BlockManager bm(64, 4, /*sliding_window=*/4);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 20));
  Batch batch;
  run_step(sched, batch);
  run_step(sched, batch);  // query at 20 sees 17..20: blocks 0..3 (0..15) released
  CHECK_EQ(bm.num_released_window(), 4);
  CHECK_EQ(batch.block_tables[0], -1);
  CHECK_EQ(batch.block_tables[3], -1);
  CHECK(batch.block_tables[4] >= 0);
  CHECK_EQ(bm.num_used_blocks(), 2);
}

TEST(remove_frees_blocks) {
  BlockManager bm(16, 4);
  Scheduler sched({8, 64}, bm);
  sched.add(make_seq(1, 10));
  sched.add(make_seq(2, 10, 500));
  Batch batch;
  run_step(sched, batch);
  CHECK(sched.remove(1) != nullptr);
  CHECK(sched.remove(1) == nullptr);
  CHECK(sched.remove(2) != nullptr);
  CHECK_EQ(bm.num_used_blocks(), 0);
  CHECK(!sched.has_unfinished());
}

GYRE_TEST_MAIN
