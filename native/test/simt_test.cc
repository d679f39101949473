// The SIMT emulation itself (native/emu/): warp collectives give CUDA's results, mma.sync and
// ldmatrix follow the PTX fragment layouts, cp.async lands only at its wait, a missing barrier
// or a deadlock is caught, bad launches and copies are refused, and graphs replay. Runs only in
// the emulation build (elsewhere: skipped).
#include "check.h"

#ifdef GYRE_CUDA_EMULATION
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/mma_ptx.cuh"
#include "cuda_test_util.h"

using namespace gyre;
using namespace gyre_test;

namespace {

// out[i * 6 + k]: shfl idx (lane 3), xor 5, up 2, down 7, xor 1 within 16 lanes, ballot(lane % 3 == 0).
__global__ void shuffles_kernel(int* out) {
  const int lane = threadIdx.x;
  int* o = out + lane * 6;
  o[0] = __shfl_sync(0xffffffffu, lane * 10, 3);
  o[1] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
  o[2] = __shfl_up_sync(0xffffffffu, lane * 10, 2);
  o[3] = __shfl_down_sync(0xffffffffu, lane * 10, 7);
  o[4] = __shfl_xor_sync(0xffffffffu, lane * 10, 9, 16);
  o[5] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
}

// One warp: A [16 x 16] and B^T [8 x 16] (n-major, as W in the GEMMs) through ldmatrix into mma.sync.
__global__ void mma_kernel(const __half* a, const __half* bt, float* d) {
  __shared__ __align__(16) __half sa[16][16], sb[8][16];
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) sa[i / 16][i % 16] = a[i];
  for (int i = lane; i < 128; i += 32) sb[i / 16][i % 16] = bt[i];
  __syncthreads();
  unsigned ra[4], rb[4];
  ptx::ldmatrix_x4(ra, &sa[lane & 15][(lane >> 4) * 8]);
  // x4 over B^T: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), and the same again.
  ptx::ldmatrix_x4(rb, &sb[lane & 7][((lane >> 3) & 1) * 8]);
  float acc[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  ptx::Mma<__half>::run(acc, ra, rb[0], rb[1]);
  const int g = lane >> 2, t = (lane & 3) * 2;
  d[g * 8 + t] = acc[0];
  d[g * 8 + t + 1] = acc[1];
  d[(g + 8) * 8 + t] = acc[2];
  d[(g + 8) * 8 + t + 1] = acc[3];
}

// Each thread writes its slot, then reads its neighbour's: correct only with the barrier.
template <bool kBarrier>
__global__ void neighbour_kernel(int* out) {
  __shared__ int s[128];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) + 1000 * static_cast<int>(blockIdx.x);
  if (kBarrier) __syncthreads();
  out[blockIdx.x * 128 + threadIdx.x] = s[(threadIdx.x + 1) % 128];
}

// cp.async of 16 bytes: what shared memory holds before and after the wait.
__global__ void cp_async_kernel(const float* src, float* before, float* after) {
  GYRE_DYNAMIC_SMEM(float, s);
  ptx::cp_async16(s + threadIdx.x * 4, src + threadIdx.x * 4, true);
  ptx::cp_async_commit();
  before[threadIdx.x] = s[threadIdx.x * 4];
  ptx::cp_async_wait<0>();
  after[threadIdx.x] = s[threadIdx.x * 4];
}

// Lanes 0-15 wait at the barrier, lanes 16-31 at a warp-wide __syncwarp: neither completes.
__global__ void deadlock_kernel(int* out) {
  if (threadIdx.x < 16) __syncthreads();
  else __syncwarp();
  out[threadIdx.x] = 1;
}

__global__ void divergent_kernel(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else v = static_cast<int>(__ballot_sync(0xffffffffu, 1));
  out[threadIdx.x] = v;
}

__global__ void add_kernel(int* p, int v) { p[threadIdx.x] += v; }

std::string launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

}  // namespace

TEST(shuffles_and_ballot_match_cuda) {
  DeviceBuffer out(32 * 6 * sizeof(int));
  launch(shuffles_kernel, 1, 32, 0, nullptr, out.get<int>());
  std::vector<int> o = from_device<int>(out, 32 * 6);
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int l = 0; l < 32; ++l) {
    const int* r = &o[l * 6];
    CHECK_EQ(r[0], 30);
    CHECK_EQ(r[1], (l ^ 5) * 10);
    CHECK_EQ(r[2], (l >= 2 ? l - 2 : l) * 10);
    CHECK_EQ(r[3], (l + 7 < 32 ? l + 7 : l) * 10);
    const int x = l ^ 9;
    CHECK_EQ(r[4], (x / 16 == l / 16 ? x : l) * 10);
    CHECK_EQ(static_cast<unsigned>(r[5]), ballot);
  }
}

TEST(mma_and_ldmatrix_follow_the_ptx_layouts) {
  std::mt19937 rng(3);
  HalfData a = random_half(256, DType::kF16, rng), bt = random_half(128, DType::kF16, rng);
  DeviceBuffer da = to_device(a.bits), db = to_device(bt.bits), dd(16 * 8 * sizeof(float));
  launch(mma_kernel, 1, 32, 0, nullptr, da.get<__half>(), db.get<__half>(), dd.get<float>());
  std::vector<float> d = from_device<float>(dd, 128);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double ref = 1.0;
      for (int k = 0; k < 16; ++k) ref += double(a.values[i * 16 + k]) * bt.values[j * 16 + k];
      CHECK_MSG(std::fabs(d[i * 8 + j] - ref) <= 1e-5 * (1 + std::fabs(ref)),
                "D[" << i << "][" << j << "] = " << d[i * 8 + j] << ", expected " << ref);
    }
}

TEST(a_missing_barrier_gives_wrong_answers) {
  DeviceBuffer out(4 * 128 * sizeof(int));
  auto wrong = [&](bool barrier) {
    if (barrier) launch(neighbour_kernel<true>, 4, 128, 0, nullptr, out.get<int>());
    else launch(neighbour_kernel<false>, 4, 128, 0, nullptr, out.get<int>());
    std::vector<int> o = from_device<int>(out, 4 * 128);
    int n = 0;
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 128; ++t) n += o[b * 128 + t] != (t + 1) % 128 + 1000 * b;
    return n;
  };
  CHECK_EQ(wrong(true), 0);
  const int n = wrong(false);
  std::printf("  without the barrier: %d of 512 reads wrong\n", n);
  CHECK(n > 0);
}

TEST(cp_async_lands_at_its_wait) {
  std::vector<float> src(32 * 4);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  DeviceBuffer ds = to_device(src), before(32 * 4), after(32 * 4);
  launch(cp_async_kernel, 1, 32, 32 * 16, nullptr, ds.get<float>(), before.get<float>(), after.get<float>());
  std::vector<float> b = from_device<float>(before, 32), a = from_device<float>(after, 32);
  for (int t = 0; t < 32; ++t) {
    CHECK_MSG(std::isnan(b[t]), "thread " << t << " saw " << b[t] << " before the wait");
    CHECK_EQ(a[t], static_cast<float>(t * 4));
  }
}

TEST(deadlocks_and_divergent_collectives_fail_the_launch) {
  DeviceBuffer out(64 * sizeof(int));
  CHECK_THROWS_WITH(launch(deadlock_kernel, 1, 64, 0, nullptr, out.get<int>()), "deadlock");
  CHECK_THROWS_WITH(launch(divergent_kernel, 1, 32, 0, nullptr, out.get<int>()), "divergent warp collectives");
}

TEST(bad_launches_and_copies_are_refused) {
  DeviceBuffer out(64 * sizeof(int));
  CHECK_THROWS_WITH(launch(add_kernel, 1, 1025, 0, nullptr, out.get<int>(), 1), "1..1024 threads");
  CHECK_THROWS_WITH(launch(add_kernel, dim3(1, 70000), 32, 0, nullptr, out.get<int>(), 1), "outside the limits");
  CHECK_THROWS_WITH(launch(add_kernel, 1, 32, 60 * 1024, nullptr, out.get<int>(), 1), "MaxDynamicSharedMemorySize");
  CUDA_CHECK(cudaFuncSetAttribute(add_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 60 * 1024));
  launch(add_kernel, 1, 32, 60 * 1024, nullptr, out.get<int>(), 1);
  CHECK(cudaFuncSetAttribute(add_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024) != cudaSuccess);
  CHECK(launch_error().find("over the device's") != std::string::npos);
  std::vector<int> host(64);
  CHECK_THROWS_WITH(launch(add_kernel, 1, 32, 0, nullptr, host.data(), 1), "not device memory");
  CHECK(cudaMemcpy(host.data(), out.get(), 65 * sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess);
  CHECK(launch_error().find("past its allocation") != std::string::npos);
  CHECK(cudaMemcpy(out.get(), host.data(), 64 * sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess);
  cudaGetLastError();
}

TEST(fresh_device_memory_is_nan) {
  DeviceBuffer b(16 * sizeof(float));
  for (float f : from_device<float>(b, 16)) CHECK(std::isnan(f));
}

TEST(graphs_replay_captured_work) {
  DeviceBuffer d(32 * sizeof(int));
  std::vector<int> zeros(32, 0), host(32, 5);
  CUDA_CHECK(cudaMemcpy(d.get(), zeros.data(), sizeof(int) * 32, cudaMemcpyHostToDevice));
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreate(&s));
  cudaGraph_t g;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  CUDA_CHECK(cudaMemcpyAsync(d.get(), host.data(), sizeof(int) * 32, cudaMemcpyHostToDevice, s));
  launch(add_kernel, 1, 32, 0, s, d.get<int>(), 3);
  CUDA_CHECK(cudaStreamEndCapture(s, &g));
  CHECK_EQ(from_device<int>(d, 32)[0], 0);  // captured, not run
  CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  host.assign(32, 10);  // a replay reads the host buffer as it is then, as the hardware does
  CUDA_CHECK(cudaGraphLaunch(exec, s));
  CHECK_EQ(from_device<int>(d, 32)[31], 13);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(g));
  CUDA_CHECK(cudaStreamDestroy(s));
}

int main(int argc, char** argv) { return run_all(argc, argv); }

#else
GYRE_SKIP_MAIN("the SIMT emulation is not in this build (GYRE_CUDA_EMULATION)")
#endif
