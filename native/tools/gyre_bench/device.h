// The GPU itself: what it is, and its device-to-device copy bandwidth (the ceiling for decode).
// CUDA builds only.
#pragma once
#include <cstddef>
#include <string>

#include "common.h"

namespace gyre_bench {

Json gpu_info();
std::string gpu_name();
// Device-to-device copy of `bytes`, CUDA events, median over `reps` after 3 warm-ups; GB/s
// (bytes read + bytes written) into gbps_out.
Json measure_bandwidth(size_t bytes, int reps, double& gbps_out);

}  // namespace gyre_bench
