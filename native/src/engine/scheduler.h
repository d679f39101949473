// Iteration-level scheduling: which sequences run this step, with how many tokens each.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "engine/block_manager.h"
#include "engine/sequence.h"
#include "gyre/batch.h"

namespace gyre {

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;  // token budget per step
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;     // positions [num_computed_tokens, + num_new_tokens) this step
  // Logits rows, set by build_batch():
  int sample_row = -1;        // the row to sample from; -1 while the chunk ends inside the sequence
  int first_prompt_row = -1;  // prompt logits: rows [first_prompt_row, + num_prompt_rows)
  int num_prompt_rows = 0;    //   for positions [num_prompt_logits_rows, + num_prompt_rows)
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;   // running sequences first, then newly admitted
  std::vector<Sequence*> preempted;      // moved back to the front of the queue this step
  int num_batched_tokens = 0;
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager& block_manager);

  void add(std::unique_ptr<Sequence> seq);
  SchedulerOutput schedule();
  // Fills the model runner's batch and the logits rows of every scheduled sequence.
  void build_batch(SchedulerOutput& out, Batch& batch) const;
  // After the forward pass: the scheduled tokens are in the cache; full blocks get hashed.
  void update_computed(const SchedulerOutput& out);
  // Takes a sequence out (finished or aborted) and frees its blocks; null if not held.
  std::unique_ptr<Sequence> remove(uint64_t id);

  std::vector<uint64_t> sequence_ids() const;  // every sequence held, running or waiting
  const std::vector<Sequence*>& running() const { return running_; }
  uint64_t first_waiting_id() const { return waiting_.front()->id; }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  bool admit(Sequence* seq, int budget, SchedulerOutput& out);
  void preempt(Sequence* seq, SchedulerOutput& out);

  SchedulerConfig config_;
  BlockManager& block_manager_;
  std::vector<std::unique_ptr<Sequence>> sequences_;  // owns every sequence held
  std::vector<Sequence*> running_;                     // oldest first
  std::deque<Sequence*> waiting_;                      // FCFS; preempted ones go to the front
  int64_t num_preemptions_ = 0;
};

}  // namespace gyre
