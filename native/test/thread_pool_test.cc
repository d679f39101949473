// ThreadPool::parallel_for: every index exactly once over many jobs in a row, ranges aligned to
// the grain, and a thread held up inside its chunk does not hold up the rest of the job.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu/thread_pool.h"

using namespace gyre;
using namespace gyre_test;

TEST(every_index_once_over_many_jobs) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int job = 0; job < 2000; ++job) {
      const int64_t n = 1 + job % 97, grain = 1 + job % 5;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<bool> misaligned{false};
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        if (b % grain != 0 || (e % grain != 0 && e != n)) misaligned = true;
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      }, grain);
      for (int64_t i = 0; i < n; ++i) CHECK_MSG(hits[static_cast<size_t>(i)] == 1, "threads " << threads << " job " << job << " index " << i);
      CHECK(!misaligned);
    }
  }
}

TEST(a_held_up_thread_leaves_its_share_to_the_others) {
  // The caller's first chunk waits until every index outside that chunk is done: with one fixed
  // range per thread that never happens (the rest of the caller's range is its own); with
  // chunks claimed one at a time the worker takes them. The timeout only bounds a failure.
  ThreadPool pool(2);
  const int64_t n = 64;
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::condition_variable cv;
  int64_t done_elsewhere = 0, held = 0;
  bool first = true, timed_out = false;
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    std::unique_lock<std::mutex> lock(mu);
    if (std::this_thread::get_id() == caller && first) {
      first = false;
      held = e - b;
      timed_out = !cv.wait_for(lock, std::chrono::seconds(20), [&] { return done_elsewhere == n - held; });
      return;
    }
    done_elsewhere += e - b;
    cv.notify_all();
  });
  CHECK_MSG(!timed_out, "the other chunks were not done while the caller was held up (" << done_elsewhere << " of " << n - held << ")");
  CHECK(held < n / 2);
}

GYRE_TEST_MAIN
