// The SIMT runtime of the emulation build: fibers, the block scheduler, warp collectives, and
// the CUDA runtime API on host memory. See simt.h for the model.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_runtime.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace simt {

Thread* g_thread = nullptr;
Block g_block;

namespace {

// ---- Fibers ----
constexpr size_t kStackBytes = 256 << 10;  // per CUDA thread; a guard page below
constexpr int kMaxThreads = 1024;

#if defined(__x86_64__)
// switch_stacks(&save, load): pushes the callee-saved registers and the FP control words on the
// current stack, stores its pointer in *save, loads `load` and pops the same frame from there.
extern "C" void gyre_simt_switch(void** save, void* load);
asm(R"(
  .text
  .p2align 4
  .globl gyre_simt_switch
  .hidden gyre_simt_switch
  .type gyre_simt_switch,@function
gyre_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr 8(%rsp)
  fldcw (%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size gyre_simt_switch, .-gyre_simt_switch
)");
#endif

void* g_sched_sp = nullptr;  // the scheduler's saved stack pointer
const std::function<void()>* g_body = nullptr;

[[noreturn]] void fiber_entry() {
  (*g_body)();
  g_thread->state = Thread::kExited;
  yield();
  std::abort();  // an exited thread is never resumed
}

#if defined(__x86_64__)
void fiber_init(Thread& t) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(t.stack) + kStackBytes) & ~uintptr_t{15};
  auto* ret_slot = reinterpret_cast<uint64_t*>(top - 16);
  ret_slot[0] = reinterpret_cast<uint64_t>(&fiber_entry);
  ret_slot[1] = 0;
  auto* sp = reinterpret_cast<uint64_t*>(top - 80);
  std::memset(sp, 0, 64);
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy(reinterpret_cast<char*>(sp) + 8, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp), &fpucw, 2);
  t.sp = sp;
}
void fiber_resume(Thread& t) { gyre_simt_switch(&g_sched_sp, t.sp); }
void fiber_yield(Thread& t) { gyre_simt_switch(&t.sp, g_sched_sp); }
#else
ucontext_t g_sched_ctx;
std::vector<ucontext_t> g_ctx(kMaxThreads);
void fiber_init(Thread& t) {
  ucontext_t& c = g_ctx[t.linear];
  getcontext(&c);
  c.uc_stack.ss_sp = t.stack;
  c.uc_stack.ss_size = kStackBytes;
  c.uc_link = nullptr;
  makecontext(&c, reinterpret_cast<void (*)()>(&fiber_entry), 0);
}
void fiber_resume(Thread& t) { swapcontext(&g_sched_ctx, &g_ctx[t.linear]); }
void fiber_yield(Thread& t) { swapcontext(&g_ctx[t.linear], &g_sched_ctx); }
#endif

// ---- cp.async ----
}  // namespace

struct Thread::Pending {
  void* dst;
  uint8_t data[16];
  int group;  // -1 until committed
  Pending* next;
};

namespace {

// ---- Errors ----
cudaError_t g_last_error = cudaSuccess;
cudaError_t g_message_code = cudaSuccess;  // the error g_last_message explains
std::string g_last_message;
cudaError_t fail(cudaError_t e, const std::string& msg) {
  g_last_error = e;
  g_message_code = e;
  g_last_message = msg;
  if (std::getenv("GYRE_EMU_VERBOSE")) std::fprintf(stderr, "simt: %s\n", msg.c_str());
  return e;
}

// ---- Device state ----
std::mutex g_kernel_mutex;  // kernels run one at a time
std::mutex g_state_mutex;   // allocations, streams, attributes
size_t g_device_memory = 0;
size_t g_allocated = 0;
std::map<uintptr_t, size_t> g_allocations;  // device: start -> bytes
std::map<uintptr_t, size_t> g_host_allocations;
std::map<const void*, int> g_max_dynamic_smem;
uint64_t g_seed = 0, g_launches = 0;

size_t device_memory() {
  if (!g_device_memory) {
    g_device_memory = size_t{1} << 30;
    if (const char* m = std::getenv("GYRE_EMU_DEVICE_MEMORY")) g_device_memory = std::strtoull(m, nullptr, 10);
  }
  return g_device_memory;
}
uint64_t seed() {
  static bool read = false;
  if (!read) {
    read = true;
    if (const char* s = std::getenv("GYRE_EMU_SEED")) g_seed = std::strtoull(s, nullptr, 10);
  }
  return g_seed;
}

// 0xff (NaN in f32, f16 and bf16) unless GYRE_EMU_POISON=0 (a diagnosis aid: zeros).
int poison_byte() {
  static const int b = [] { const char* p = std::getenv("GYRE_EMU_POISON"); return p && *p == '0' ? 0 : 0xff; }();
  return b;
}

bool is_device(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

}  // namespace
}  // namespace simt

struct CUstream_st {
  bool capturing = false;
  std::vector<std::function<void()>>* graph = nullptr;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};

namespace simt {
namespace {

CUstream_st g_default_stream;
CUstream_st* stream_of(cudaStream_t s) { return s ? s : &g_default_stream; }

// ---- The scheduler ----
struct Rng {
  uint64_t s;
  uint64_t next() {
    s += 0x9E3779B97F4A7C15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

std::vector<Thread> g_threads(kMaxThreads);
std::vector<uint8_t> g_smem;
size_t g_smem_bytes = 0;

void ensure_stacks(int n) {
  for (int i = 0; i < n; ++i) {
    if (g_threads[i].stack) continue;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { std::perror("simt: mmap"); std::abort(); }
    mprotect(m, page, PROT_NONE);  // guard: a stack overflow faults instead of corrupting
    g_threads[i].stack = static_cast<char*>(m) + page;
  }
}

void drop_pending(Thread& t) {
  while (t.pending) {
    Thread::Pending* p = t.pending;
    t.pending = p->next;
    delete p;
  }
  t.groups = 0;
}

const char* op_name(void (*fn)(Thread* const*, unsigned));

std::string where() {
  return "block (" + std::to_string(g_block.idx.x) + "," + std::to_string(g_block.idx.y) + "," +
         std::to_string(g_block.idx.z) + ")";
}

// A warp collective whose group is complete runs, and its lanes become ready. Returns an error
// message when the lanes of the group disagree or one of them has exited.
std::string try_collective(Thread* t, int n, std::vector<int>& ready) {
  const int w = t->warp, first = w * 32;
  unsigned present = 0;
  for (int l = 0; l < 32 && first + l < n; ++l) present |= 1u << l;
  const unsigned group = t->mask & present;
  const std::string at = " at " + where() + " warp " + std::to_string(w);
  if (!(group >> t->lane & 1u))
    return std::string("warp collective ") + op_name(t->collective) + at + ": lane " + std::to_string(t->lane) +
           " is not in its own mask";
  Thread* members[32] = {};
  for (int o = 0; o < 32; ++o) {
    if (!(group >> o & 1u)) continue;
    Thread* u = &g_threads[first + o];
    if (u->state == Thread::kExited)
      return std::string("warp collective ") + op_name(t->collective) + at + ": lane " + std::to_string(o) +
             " of its mask has exited";
    if (u->state != Thread::kCollective) return {};  // not every lane is there yet
    if (u->collective != t->collective || (u->mask & present) != group)
      return "divergent warp collectives" + at + ": lane " + std::to_string(t->lane) + " at " + op_name(t->collective) +
             ", lane " + std::to_string(o) + " at " + op_name(u->collective);
    members[o] = u;
  }
  t->collective(members, group);
  for (int o = 0; o < 32; ++o)
    if (members[o]) {
      members[o]->state = Thread::kReady;
      ready.push_back(first + o);
    }
  return {};
}

// Runs one block to completion. Returns an error message, empty when it finished.
// Scheduling: a random ready thread is picked, then every ready thread of its warp runs (in a
// random order) until each blocks, as a warp issues together on the hardware. A warp whose
// collective completes may run ahead of warps that have not started, so a barrier missing
// between one warp's writes and another's reads shows up.
std::string run_block(int n, Rng& rng) {
  const dim3 d = g_block.dim;
  for (int i = 0; i < n; ++i) {
    Thread& t = g_threads[i];
    t.idx = {static_cast<unsigned>(i % d.x), static_cast<unsigned>(i / d.x % d.y), static_cast<unsigned>(i / (d.x * d.y))};
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    t.state = Thread::kReady;
    t.collective = nullptr;
    drop_pending(t);
    fiber_init(t);
  }
  if (g_smem_bytes) std::memset(g_smem.data(), poison_byte(), g_smem_bytes);
  std::vector<int> ready(n), batch;
  for (int i = 0; i < n; ++i) ready[i] = i;
  int live = n;
  while (live > 0) {
    if (ready.empty()) {
      int at_barrier = 0, at_collective = 0;
      for (int i = 0; i < n; ++i) {
        at_barrier += g_threads[i].state == Thread::kBarrier;
        at_collective += g_threads[i].state == Thread::kCollective;
      }
      if (at_barrier != live)
        return "deadlock at " + where() + ": " + std::to_string(at_barrier) + " threads at __syncthreads, " +
               std::to_string(at_collective) + " at a warp collective, " + std::to_string(n - live) +
               " exited (a barrier not reached by every thread, or a collective missing lanes)";
      for (int i = 0; i < n; ++i)
        if (g_threads[i].state == Thread::kBarrier) {
          g_threads[i].state = Thread::kReady;
          ready.push_back(i);
        }
    }
    const int w = g_threads[ready[rng.next() % ready.size()]].warp;
    batch.clear();
    for (size_t i = 0; i < ready.size();) {
      if (g_threads[ready[i]].warp == w) {
        batch.push_back(ready[i]);
        ready[i] = ready.back();
        ready.pop_back();
      } else {
        ++i;
      }
    }
    for (size_t i = batch.size(); i > 1; --i) std::swap(batch[i - 1], batch[rng.next() % i]);
    for (int i : batch) {
      Thread& t = g_threads[i];
      g_thread = &t;
      fiber_resume(t);
      g_thread = nullptr;
      if (t.state == Thread::kExited) {
        --live;
        drop_pending(t);
        for (int o = w * 32; o < std::min(n, w * 32 + 32); ++o)  // a lane waiting for this one
          if (g_threads[o].state == Thread::kCollective && (g_threads[o].mask >> t.lane & 1u))
            return std::string("warp collective ") + op_name(g_threads[o].collective) + " at " + where() + " warp " +
                   std::to_string(w) + ": lane " + std::to_string(t.lane) + " of its mask has exited";
      } else if (t.state == Thread::kCollective) {
        std::string err = try_collective(&t, n, ready);
        if (!err.empty()) return err;
      }
    }
  }
  return {};
}

cudaError_t execute(const void* kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(g_kernel_mutex);
  const int n = static_cast<int>(block.x * block.y * block.z);
  ensure_stacks(n);
  if (g_smem.size() < smem) g_smem.resize(smem);
  g_smem_bytes = smem;
  g_body = &body;
  Rng rng{seed() * 0x9E3779B97F4A7C15ull + ++g_launches};
  g_block.dim = block;
  g_block.grid = grid;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block.idx = {x, y, z};
        const std::string err = run_block(n, rng);
        if (!err.empty()) {
          g_body = nullptr;
          return fail(cudaErrorLaunchFailure, "kernel failed: " + err);
        }
      }
  g_body = nullptr;
  return cudaSuccess;
}

// ---- Warp collectives ----
int lane_in(int lane, int src, int width) { return (lane / width) * width + src; }

}  // namespace

void op_syncwarp(Thread* const*, unsigned) {}
void op_shfl_idx(Thread* const* lanes, unsigned mask) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const int w = static_cast<int>(lanes[l]->in[3]);
    const int src = lane_in(l, static_cast<int>(lanes[l]->in[2]) % w, w);
    const Thread* s = lanes[src] ? lanes[src] : lanes[l];
    std::memcpy(lanes[l]->out, s->in, 8);
  }
}
void op_shfl_xor(Thread* const* lanes, unsigned mask) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const int w = static_cast<int>(lanes[l]->in[3]);
    int src = l ^ static_cast<int>(lanes[l]->in[2]);
    if (src / w != l / w || src >= 32) src = l;
    const Thread* s = lanes[src] ? lanes[src] : lanes[l];
    std::memcpy(lanes[l]->out, s->in, 8);
  }
}
void op_shfl_up(Thread* const* lanes, unsigned mask) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const int w = static_cast<int>(lanes[l]->in[3]);
    int src = l - static_cast<int>(lanes[l]->in[2]);
    if (src < (l / w) * w) src = l;
    const Thread* s = lanes[src] ? lanes[src] : lanes[l];
    std::memcpy(lanes[l]->out, s->in, 8);
  }
}
void op_shfl_down(Thread* const* lanes, unsigned mask) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const int w = static_cast<int>(lanes[l]->in[3]);
    int src = l + static_cast<int>(lanes[l]->in[2]);
    if (src >= (l / w + 1) * w) src = l;
    const Thread* s = lanes[src] ? lanes[src] : lanes[l];
    std::memcpy(lanes[l]->out, s->in, 8);
  }
}
void op_ballot(Thread* const* lanes, unsigned mask) {
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l)
    if (lanes[l] && lanes[l]->in[0]) bits |= 1u << l;
  for (int l = 0; l < 32; ++l)
    if (lanes[l]) lanes[l]->out[0] = bits;
}

// ldmatrix .m8n8 .b16, x1/x2/x4: lanes 8i..8i+7 give the row addresses of matrix i; lane l
// receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix (.trans: the transposed matrix).
template <int kCount, bool kTrans>
void op_ldmatrix(Thread* const* lanes, unsigned mask) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    for (int i = 0; i < kCount; ++i) {
      uint16_t h[2];
      for (int e = 0; e < 2; ++e) {
        const int r = kTrans ? 2 * (l % 4) + e : l / 4, c = kTrans ? l / 4 : 2 * (l % 4) + e;
        const Thread* src = lanes[8 * i + r];
        uint64_t addr;
        std::memcpy(&addr, src->in, 8);
        std::memcpy(&h[e], reinterpret_cast<const char*>(addr) + 2 * c, 2);
      }
      lanes[l]->out[i] = static_cast<uint32_t>(h[0]) | static_cast<uint32_t>(h[1]) << 16;
    }
  }
}
template void op_ldmatrix<1, false>(Thread* const*, unsigned);
template void op_ldmatrix<2, false>(Thread* const*, unsigned);
template void op_ldmatrix<4, false>(Thread* const*, unsigned);
template void op_ldmatrix<1, true>(Thread* const*, unsigned);
template void op_ldmatrix<2, true>(Thread* const*, unsigned);
template void op_ldmatrix<4, true>(Thread* const*, unsigned);

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32: per lane (g = lane / 4,
// t = lane % 4) in[0..3] = A regs, in[4..5] = B regs, in[6..9] = C; out[0..3] = D, where
//   a0: A[g][2t..2t+1]  a1: A[g+8][2t..]  a2: A[g][2t+8..]  a3: A[g+8][2t+8..]
//   b0: B[2t..2t+1][g]  b1: B[2t+8..2t+9][g]
//   c0, c1: C[g][2t], C[g][2t+1]   c2, c3: C[g+8][2t], C[g+8][2t+1]
// D = A B + C in float32, k in order (the hardware's products are exact; its sum order is not
// specified, so tests compare with a tolerance).
template <bool kBf16>
void op_mma_m16n8k16(Thread* const* lanes, unsigned mask) {
  auto half_of = [](uint32_t reg, int hi) -> float {
    const uint16_t b = static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xffff);
    if (kBf16) {
      const uint32_t u = static_cast<uint32_t>(b) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    _Float16 h;
    std::memcpy(&h, &b, 2);
    return static_cast<float>(h);
  };
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const Thread* t = lanes[l];
    const int g = l / 4, q = l % 4;
    for (int e = 0; e < 2; ++e) {
      A[g][2 * q + e] = half_of(t->in[0], e);
      A[g + 8][2 * q + e] = half_of(t->in[1], e);
      A[g][2 * q + 8 + e] = half_of(t->in[2], e);
      A[g + 8][2 * q + 8 + e] = half_of(t->in[3], e);
      B[2 * q + e][g] = half_of(t->in[4], e);
      B[2 * q + 8 + e][g] = half_of(t->in[5], e);
    }
    float c[4];
    std::memcpy(c, &t->in[6], 16);
    C[g][2 * q] = c[0];
    C[g][2 * q + 1] = c[1];
    C[g + 8][2 * q] = c[2];
    C[g + 8][2 * q + 1] = c[3];
  }
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, q = l % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * q, 2 * q + 1, 2 * q, 2 * q + 1};
    for (int e = 0; e < 4; ++e) {
      float d = C[rows[e]][cols[e]];
      for (int k = 0; k < 16; ++k) d = std::fma(A[rows[e]][k], B[k][cols[e]], d);
      std::memcpy(&lanes[l]->out[e], &d, 4);
    }
  }
}
template void op_mma_m16n8k16<false>(Thread* const*, unsigned);
template void op_mma_m16n8k16<true>(Thread* const*, unsigned);

namespace {
const char* op_name(void (*fn)(Thread* const*, unsigned)) {
  if (fn == op_syncwarp) return "__syncwarp";
  if (fn == op_shfl_idx) return "__shfl_sync";
  if (fn == op_shfl_xor) return "__shfl_xor_sync";
  if (fn == op_shfl_up) return "__shfl_up_sync";
  if (fn == op_shfl_down) return "__shfl_down_sync";
  if (fn == op_ballot) return "__ballot_sync";
  if (fn == op_mma_m16n8k16<false> || fn == op_mma_m16n8k16<true>) return "mma.sync.m16n8k16";
  return "ldmatrix";
}
}  // namespace

void yield() { fiber_yield(*g_thread); }

void* dynamic_smem() { return g_smem.data(); }

void cp_async(void* dst, const void* src, int bytes) {
  auto* p = new Thread::Pending{dst, {}, -1, g_thread->pending};
  if (bytes > 0) std::memcpy(p->data, src, static_cast<size_t>(bytes));
  g_thread->pending = p;
}
void cp_async_commit() {
  Thread* t = g_thread;
  for (Thread::Pending* p = t->pending; p && p->group < 0; p = p->next) p->group = t->groups;
  ++t->groups;
}
// Lands every copy of the committed groups but the newest `allowed`.
void cp_async_wait(int allowed) {
  Thread* t = g_thread;
  const int limit = t->groups - allowed;
  Thread::Pending** link = &t->pending;
  while (*link) {
    Thread::Pending* p = *link;
    if (p->group >= 0 && p->group < limit) {
      std::memcpy(p->dst, p->data, 16);
      *link = p->next;
      delete p;
    } else {
      link = &p->next;
    }
  }
}

bool check_device_pointer(const void* kernel, const void* p, int index) {
  if (!p) return true;
  std::lock_guard<std::mutex> lock(g_state_mutex);
  if (is_device(p, 1)) return true;
  fail(cudaErrorInvalidDevicePointer, "kernel argument " + std::to_string(index) +
                                          " is not device memory (a host pointer passed to a kernel?)");
  return false;
}

bool launch_erased(const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   std::function<void()> body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    fail(cudaErrorInvalidConfiguration, "launch: block (" + std::to_string(block.x) + "," + std::to_string(block.y) +
                                            "," + std::to_string(block.z) + ") is not 1..1024 threads");
    return false;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration, "launch: grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) +
                                            "," + std::to_string(grid.z) + ") is outside the limits");
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    auto it = g_max_dynamic_smem.find(kernel);
    const size_t limit = it == g_max_dynamic_smem.end() ? 48 * 1024 : static_cast<size_t>(it->second);
    if (smem > limit) {
      fail(cudaErrorInvalidValue, "launch: " + std::to_string(smem) + " bytes of dynamic shared memory, over " +
                                      std::to_string(limit) + " (cudaFuncAttributeMaxDynamicSharedMemorySize)");
      return false;
    }
  }
  CUstream_st* s = stream_of(stream);
  if (s->capturing) {
    s->graph->push_back([=]() { execute(kernel, grid, block, smem, body); });
    return true;
  }
  return execute(kernel, grid, block, smem, body) == cudaSuccess;
}

cudaError_t set_func_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorNotSupported, "cudaFuncSetAttribute: attribute");
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  if (value < 0 || static_cast<size_t>(value) > p.sharedMemPerBlockOptin)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                           " bytes of dynamic shared memory, over the device's " +
                                           std::to_string(p.sharedMemPerBlockOptin));
  std::lock_guard<std::mutex> lock(g_state_mutex);
  g_max_dynamic_smem[kernel] = value;
  return cudaSuccess;
}
void set_device_memory(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  g_device_memory = bytes;
}
void set_seed(uint64_t s) {
  seed();
  g_seed = s;
}

}  // namespace simt

// ---- The runtime API ----
using simt::fail;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaSuccess && e == simt::g_message_code && !simt::g_last_message.empty())
    return simt::g_last_message.c_str();
  return cudaGetErrorName(e);
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = simt::g_last_error;
  simt::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return simt::g_last_error; }
cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidValue, "cudaSetDevice: one emulated device"); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "Gyre SIMT emulation (sm_86 limits)");
  p->totalGlobalMem = simt::device_memory();
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 99 * 1024;
  p->sharedMemPerMultiprocessor = 100 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024; p->maxThreadsDim[1] = 1024; p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647; p->maxGridSize[1] = 65535; p->maxGridSize[2] = 65535;
  p->multiProcessorCount = 80;  // an A10G
  p->major = 8;
  p->minor = 6;
  p->l2CacheSize = 6 << 20;
  p->memoryBusWidth = 384;
  p->maxThreadsPerMultiProcessor = 1536;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int device) {
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, device);
  switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(p.sharedMemPerBlockOptin); return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total) {
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  *total = simt::device_memory();
  *free_b = *total - std::min(*total, simt::g_allocated);
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) & ~size_t{255};
  if (simt::g_allocated + rounded > simt::device_memory())
    return fail(cudaErrorMemoryAllocation, "cudaMalloc: out of emulated device memory (" + std::to_string(bytes) +
                                               " bytes asked, " + std::to_string(simt::device_memory() - simt::g_allocated) +
                                               " free; GYRE_EMU_DEVICE_MEMORY sets the size)");
  void* m = std::aligned_alloc(256, rounded);
  if (!m) return fail(cudaErrorMemoryAllocation, "cudaMalloc: host allocation failed");
  std::memset(m, simt::poison_byte(), rounded);  // device memory comes uncleared: NaN until written
  simt::g_allocations[reinterpret_cast<uintptr_t>(m)] = rounded;
  simt::g_allocated += rounded;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  auto it = simt::g_allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == simt::g_allocations.end()) return fail(cudaErrorInvalidDevicePointer, "cudaFree: not a cudaMalloc pointer");
  simt::g_allocated -= it->second;
  simt::g_allocations.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) & ~size_t{255});
  if (!*p) return fail(cudaErrorMemoryAllocation, "cudaMallocHost: allocation failed");
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  simt::g_host_allocations[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return cudaMallocHost(p, bytes); }
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  if (!simt::g_host_allocations.erase(reinterpret_cast<uintptr_t>(p)))
    return fail(cudaErrorInvalidValue, "cudaFreeHost: not a cudaMallocHost pointer");
  std::free(p);
  return cudaSuccess;
}

namespace {
// Checks that each side of a copy is where `kind` says, as the driver would fault otherwise.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* who) {
  std::lock_guard<std::mutex> lock(simt::g_state_mutex);
  const bool dst_dev = simt::is_device(dst, bytes), src_dev = simt::is_device(src, bytes);
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
  if (dst_dev != want_dst || src_dev != want_src)
    return fail(cudaErrorInvalidValue, std::string(who) + ": " + std::to_string(bytes) + " bytes: the " +
                                           (dst_dev != want_dst ? "destination" : "source") +
                                           " is not where the copy kind says (or the range runs past its allocation)");
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (!bytes) return cudaSuccess;
  if (simt::g_default_stream.capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaMemcpy during capture");
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy")) return e;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (!bytes) return cudaSuccess;
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync")) return e;
  CUstream_st* st = simt::stream_of(s);
  if (st->capturing) st->graph->push_back([=]() { std::memmove(dst, src, bytes); });
  else std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (!bytes) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(simt::g_state_mutex);
    if (!simt::is_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset: not device memory");
  }
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  CUstream_st* st = simt::stream_of(s);
  if (st->capturing && bytes) {
    {
      std::lock_guard<std::mutex> lock(simt::g_state_mutex);
      if (!simt::is_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync: not device memory");
    }
    st->graph->push_back([=]() { std::memset(p, value, bytes); });
    return cudaSuccess;
  }
  return cudaMemset(p, value, bytes);
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = new CUstream_st; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamDestroy during capture");
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (simt::stream_of(s)->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize during capture");
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  CUstream_st* st = simt::stream_of(s);
  if (!s) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy default stream cannot be captured");
  if (st->capturing) return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture: already capturing");
  st->capturing = true;
  st->graph = new std::vector<std::function<void()>>;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  CUstream_st* st = simt::stream_of(s);
  if (!st->capturing) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: not capturing");
  *g = new CUgraph_st{std::move(*st->graph)};
  delete st->graph;
  st->graph = nullptr;
  st->capturing = false;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  *status = simt::stream_of(s)->capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  *exec = new CUgraphExec_st{g->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (simt::stream_of(s)->capturing) return fail(cudaErrorNotSupported, "cudaGraphLaunch into a capturing stream");
  for (auto& op : exec->ops) op();
  return simt::g_last_error;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) { delete exec; return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { e->t = std::chrono::steady_clock::now(); return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }
