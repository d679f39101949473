// Helpers for the CUDA tests (native/test/cuda_*_test.cc): host <-> device copies, random
// f16/bf16 data, NaN poisoning (so unwritten outputs fail), relative errors, and a main()
// that reports the device tests as skipped (exit 77) where there is no GPU or driver.
#pragma once
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda/cuda_util.h"

namespace gyre {
bool cuda_device_available();  // cuda_backend.cc
}

namespace gyre_test {

template <typename T>
gyre::DeviceBuffer to_device(const std::vector<T>& v) {
  gyre::DeviceBuffer b(std::max<size_t>(1, v.size() * sizeof(T)));
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
template <typename T>
std::vector<T> from_device(const gyre::DeviceBuffer& b, size_t n) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> v(n);
  if (n) CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}
// All bits set: NaN as float32, f16 and bf16.
inline gyre::DeviceBuffer poisoned(size_t bytes) {
  gyre::DeviceBuffer b(std::max<size_t>(1, bytes));
  CUDA_CHECK(cudaMemset(b.get(), 0xff, bytes));
  return b;
}

// n values ~ U(-scale, scale) in dtype `dt` (bits) and the same values as float.
struct HalfData {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
inline HalfData random_half(size_t n, gyre::DType dt, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  HalfData d;
  d.bits.resize(n);
  d.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.bits[i] = gyre::float_to_bits(u(rng), dt);
    d.values[i] = gyre::bits_to_float(d.bits[i], dt);
  }
  return d;
}
inline std::vector<float> to_floats(const std::vector<uint16_t>& bits, gyre::DType dt) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = gyre::bits_to_float(bits[i], dt);
  return out;
}

// ||got - ref|| / ||ref|| over [begin, end); any NaN or inf in `got` gives +inf.
template <typename G, typename R>
double rel_err(const G& got, const R& ref, size_t begin, size_t end) {
  double num = 0, den = 0;
  for (size_t i = begin; i < end; ++i) {
    const double g = got[i], r = ref[i];
    if (!std::isfinite(g)) return INFINITY;
    num += (g - r) * (g - r);
    den += r * r;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
template <typename G, typename R>
double rel_err(const G& got, const R& ref) { return rel_err(got, ref, 0, ref.size()); }

// Output rounding of the activation dtype dominates the kernels' error.
inline double half_tol(gyre::DType dt) { return dt == gyre::DType::kBF16 ? 1e-2 : 2e-3; }

// The large shapes: always on a GPU; under the emulation only in the slow set (CI), since a
// 4096 x 4096 GEMM costs the emulator seconds.
inline bool full_shapes() {
#ifdef GYRE_CUDA_EMULATION
  return gyre_test::slow();
#else
  return true;
#endif
}

// Half of a grid of variants (e.g. dtype x fixture) under the emulation outside the slow set:
// the cells whose indices sum to an even number, so each row and each column keeps a cell.
inline bool in_quick_half(int i, int j) { return full_shapes() || (i + j) % 2 == 0; }

// Runs the tests whose names contain "host_" always, the rest only with a CUDA device.
inline int cuda_test_main(int argc, char** argv) {
  if (!gyre::cuda_device_available()) {
    std::printf("no CUDA device: running the host-only tests; the device tests are skipped\n");
    char host[] = "host_";
    char* args[] = {argv[0], host};
    const int rc = run_all(2, args);
    return rc == 0 ? kSkipExit : rc;  // ctest shows Skipped: the device tests did not run
  }
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  std::printf("device: %s (sm_%d%d)\n", p.name, p.major, p.minor);
  return run_all(argc, argv);
}

}  // namespace gyre_test
