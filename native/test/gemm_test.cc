// The CPU linear layer (PackedLinear) on odd shapes, every dtype: against a double reference,
// batch invariance across the kernel's tile shapes (one token, 2..5-token tiles, 6-token tiles),
// and the huge-page buffers the panels live in.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/gemm.h"
#include "cpu/huge_pages.h"
#include "common/simd.h"

using namespace gyre;
using namespace gyre_test;

namespace {

uint16_t to_half(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);  // truncation: any bf16 value will do
}

// Runs W [O, K] of `dtype` over T random tokens; checks every row against a double reference,
// and that each row alone (T = 1, the unconverted path) gives the same bits as in the batch.
void check_shape(DType dtype, int O, int K, int T, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> wf(size_t(O) * K), x(size_t(T) * K);
  std::vector<uint16_t> wh(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    const float v = nd(rng);
    if (dtype == DType::kF16) wh[i] = to_half(v), wf[i] = half_to_float(wh[i]);
    else if (dtype == DType::kBF16) wh[i] = to_bf16(v), wf[i] = bf16_to_float(wh[i]);
    else wf[i] = v;
  }
  for (auto& v : x) v = nd(rng);
  const void* data = dtype == DType::kF32 ? static_cast<const void*>(wf.data()) : wh.data();
  TensorView w{dtype, {O, K}, data, size_t(O) * K * dtype_size(dtype)};
  PackedLinear lin({&w});
  const int ldy = O + 3;  // a row stride wider than O: columns past O stay untouched
  std::vector<float> y(size_t(T) * ldy, -7.0f), y1(ldy, -7.0f);
  lin.run(x.data(), T, K, y.data(), ldy, 0, lin.num_panels());
  for (int t = 0; t < T; ++t) {
    for (int o = 0; o < O; ++o) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) ref += double(x[size_t(t) * K + k]) * wf[size_t(o) * K + k], mag += std::fabs(double(x[size_t(t) * K + k]) * wf[size_t(o) * K + k]);
      CHECK_MSG(std::fabs(y[size_t(t) * ldy + o] - ref) <= 1e-6 * K * (mag + 1),  // float32 sums over K terms
                dtype_name(dtype) << " O " << O << " K " << K << " T " << T << ": t " << t << " o " << o << " got "
                                  << y[size_t(t) * ldy + o] << " want " << ref);
    }
    for (int o = O; o < ldy; ++o) CHECK(y[size_t(t) * ldy + o] == -7.0f);
    lin.run(x.data() + size_t(t) * K, 1, K, y1.data(), ldy, 0, lin.num_panels());
    CHECK_MSG(std::memcmp(y1.data(), y.data() + size_t(t) * ldy, sizeof(float) * O) == 0,
              dtype_name(dtype) << " O " << O << " K " << K << " T " << T << ": row " << t << " alone differs from the batch");
  }
}

}  // namespace

TEST(linear_matches_reference_and_is_batch_invariant_on_odd_shapes) {
  const DType dtypes[] = {DType::kF16, DType::kBF16, DType::kF32};
  const int Ts[] = {1, 2, 3, 17, 600};
  uint32_t seed = 1;
  for (DType dt : dtypes)
    for (int T : Ts) {
      check_shape(dt, 37, 29, T, seed++);  // K not a multiple of 8, O not a multiple of 16
      check_shape(dt, 16, 8, T, seed++);
    }
  check_shape(DType::kF16, 200, 3001, 20, seed++);  // a panel slab smaller than the 13 panels
}

TEST(a_panel_range_writes_only_its_columns) {
  // Threads split the panels; a range must write its own 16-column blocks and nothing else.
  const int O = 70, K = 19, T = 40;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 1);
  std::vector<uint16_t> wh(size_t(O) * K);
  std::vector<float> x(size_t(T) * K);
  for (auto& v : wh) v = to_half(nd(rng));
  for (auto& v : x) v = nd(rng);
  TensorView w{DType::kF16, {O, K}, wh.data(), wh.size() * 2};
  PackedLinear lin({&w});
  std::vector<float> full(size_t(T) * O), parts(size_t(T) * O, -7.0f);
  lin.run(x.data(), T, K, full.data(), O, 0, lin.num_panels());
  lin.run(x.data(), T, K, parts.data(), O, 2, 4);
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < O; ++o) {
      const float got = parts[size_t(t) * O + o];
      if (o >= 32 && o < 64) CHECK_MSG(got == full[size_t(t) * O + o], "t " << t << " o " << o);
      else CHECK_MSG(got == -7.0f, "t " << t << " o " << o << " written outside panels [2, 4)");
    }
  lin.run(x.data(), T, K, parts.data(), O, 0, 2);
  lin.run(x.data(), T, K, parts.data(), O, 4, lin.num_panels());
  CHECK(std::memcmp(parts.data(), full.data(), full.size() * 4) == 0);
}

// The VmFlags line of the mapping in /proc/self/smaps that holds p, or "" if none is found.
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    const size_t dash = line.find('-');
    if (dash != std::string::npos && dash < line.find(' ')) {  // "lo-hi perms ...": a new mapping
      const uintptr_t lo = std::stoull(line.substr(0, dash), nullptr, 16);
      const uintptr_t hi = std::stoull(line.substr(dash + 1), nullptr, 16);
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(big_buffers_are_aligned_and_advised_for_huge_pages) {
  HugeVector<uint16_t> big(3 << 20);  // 6 MiB
  CHECK(reinterpret_cast<uintptr_t>(big.data()) % kHugePage == 0);
  big.back() = 7;
  HugeVector<float> small(10, 1.0f);
  CHECK(small[9] == 1.0f);
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (mode.empty() || mode.find("[never]") != std::string::npos) SKIP("transparent huge pages are off here");
  const std::string flags = vm_flags_of(big.data());
  CHECK_MSG(flags.find(" hg") != std::string::npos, "no MADV_HUGEPAGE on the buffer: '" << flags << "'");
}

GYRE_TEST_MAIN
