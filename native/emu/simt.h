// The SIMT runtime of the CUDA emulation build (GYRE_CUDA_EMULATION): the same kernel sources,
// compiled by the host compiler, run on the CPU.
//
//   a grid runs block by block; every CUDA thread of a block is a fiber with its own stack, so a
//   kernel's locals are its registers. A thread runs until it reaches a synchronisation point
//   (__syncthreads, a warp collective) or exits; then the scheduler runs another. The order in
//   which threads run between synchronisation points is shuffled by a seed (GYRE_EMU_SEED), so
//   a missing barrier gives wrong answers instead of passing by luck.
//   warp collectives (shuffles, ballots, ldmatrix, mma.sync) wait for every lane of their mask,
//   then compute the instruction's result for all lanes at once from the PTX ISA's layouts.
//   cp.async copies are held per thread and land at cp.async.wait_group, as on the hardware.
//   dynamic shared memory and fresh cudaMalloc memory are filled with 0xff (NaN as f32, f16 and
//   bf16), so a read of memory nobody wrote shows up in the results.
// Kernels run one at a time (a process-wide lock), on the thread that launches them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef struct CUstream_st* cudaStream_t;

namespace simt {

// One CUDA thread. `in`/`out`: the operands and results of the warp collective it waits at.
struct Thread {
  uint3 idx;
  int linear, warp, lane;
  enum State { kReady, kBarrier, kCollective, kExited } state;
  void (*collective)(Thread* const* lanes, unsigned mask);  // the instruction it waits at
  unsigned mask;
  uint32_t in[16];
  uint32_t out[16];
  void* sp;      // saved stack pointer (x86-64) or context
  void* stack;   // base of its stack mapping
  struct Pending;
  Pending* pending = nullptr;  // cp.async copies not yet landed
  int groups = 0;              // committed cp.async groups
};

struct Block {
  uint3 idx;
  dim3 dim, grid;
};

extern Thread* g_thread;  // the running CUDA thread
extern Block g_block;     // its block

void yield();  // back to the scheduler, state already set

inline void syncthreads() {
  g_thread->state = Thread::kBarrier;
  yield();
}
// Waits until every lane of `mask` (within the block) arrives at the same collective; `fn`
// then runs once with the 32 lanes (null where a lane does not exist) and fills their `out`.
inline void collective(void (*fn)(Thread* const*, unsigned), unsigned mask) {
  g_thread->collective = fn;
  g_thread->mask = mask;
  g_thread->state = Thread::kCollective;
  yield();
}

void* dynamic_smem();

// cp.async: `bytes` (<= 16) from src, zero-filled to 16, land at `dst` when waited for.
void cp_async(void* dst, const void* src, int bytes);
void cp_async_commit();
void cp_async_wait(int newest_pending_allowed);

// The launch itself: checks the configuration, then runs (or records, while the stream is
// being captured) `body` for every thread of the grid. Returns false with the last error set.
bool launch_erased(const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   std::function<void()> body);
// Pointer arguments of a launch must be device memory (cudaMalloc), or null.
bool check_device_pointer(const void* kernel, const void* p, int index);

template <typename A>
inline bool check_arg(const void* kernel, const A& a, int index) {
  if constexpr (std::is_pointer_v<A>) return check_device_pointer(kernel, static_cast<const void*>(a), index);
  else return true;
}

template <typename... P>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            std::remove_cv_t<P>... args) {
  int i = 0;
  const void* key = reinterpret_cast<const void*>(kernel);
  if (!(check_arg(key, args, i++) && ...)) return;
  launch_erased(key, grid, block, smem, stream, [=]() { kernel(args...); });
}

}  // namespace simt
