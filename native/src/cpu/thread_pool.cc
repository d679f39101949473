#include "cpu/thread_pool.h"

#include <algorithm>

namespace gyre {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks(uint32_t id) {
  for (;;) {
    // The claim is decided from next_ alone: once chunk c < chunks of job `id` is claimed, that
    // job cannot finish without it, so job_ and its sizes stay as they are until it is done.
    uint64_t v = next_.load(std::memory_order_acquire);
    int64_t chunk, chunks;
    do {
      if (static_cast<uint32_t>(v >> 32) != id) return;
      chunks = static_cast<int64_t>((v >> 16) & 0xffff);
      chunk = static_cast<int64_t>(v & 0xffff);
      if (chunk >= chunks) return;
    } while (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    const int64_t units = (job_n_ + job_grain_ - 1) / job_grain_;
    const int64_t b = std::min(job_n_, units * chunk / chunks * job_grain_);
    const int64_t e = std::min(job_n_, units * (chunk + 1) / chunks * job_grain_);
    if (b < e) (*job_)(b, e);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain,
                              int64_t min_parallel) {
  if (n <= 0) return;
  const int64_t units = (n + grain - 1) / grain;
  if (num_threads() <= 1 || units <= 1 || n < min_parallel) {
    fn(0, n);
    return;
  }
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    job_chunks_ = std::min<int64_t>({units, int64_t{num_threads()} * kChunksPerThread, 0xffff});
    done_.store(0, std::memory_order_relaxed);
    id = ++job_id_;
    next_.store((static_cast<uint64_t>(id) << 32) | (static_cast<uint64_t>(job_chunks_) << 16),
                std::memory_order_release);
  }
  start_cv_.notify_all();
  run_chunks(id);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return done_.load(std::memory_order_acquire) == job_chunks_; });  // job_chunks_: ours
  job_ = nullptr;
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || job_id_ != seen; });
      if (stop_) return;
      id = seen = job_id_;
    }
    run_chunks(id);
  }
}

}  // namespace gyre
