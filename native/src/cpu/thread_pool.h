// A fixed pool of worker threads for data-parallel kernels. parallel_for cuts [0, n) into a few
// chunks per thread that the caller and the workers claim one at a time, so a thread the OS
// preempts (the JS thread, or other processes, share these cores) holds up only the chunk it
// is in: the others take the rest. Workers block on a condition variable between jobs (no
// spinning). Work is split by output, never inside a reduction, so results depend neither on
// the thread count nor on which thread ran a chunk.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gyre {

class ThreadPool {
 public:
  static constexpr int kChunksPerThread = 4;

  explicit ThreadPool(int num_threads);  // 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) over disjoint ranges covering [0, n), possibly several per thread. Ranges
  // are multiples of `grain` (except the last), and work smaller than min_parallel runs on the
  // caller alone.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1,
                    int64_t min_parallel = 1);

 private:
  void worker_loop();
  // Claims and runs chunks of job `id` until none is left; false if the job has moved on.
  void run_chunks(uint32_t id);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // The job: set by parallel_for under mu_ before it is published, constant until it returns.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
  int64_t job_chunks_ = 0;
  uint32_t job_id_ = 0;                  // under mu_
  // (job id << 32) | (chunks << 16) | next chunk: a claim names its job, so a worker that
  // wakes late never runs a chunk of one job with the function of another.
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};         // chunks of the current job finished
  bool stop_ = false;
};

}  // namespace gyre
