// make_backend: the seam between the engine and the hardware. It picks cpu/ or cuda/, so it sits
// beside them, above both.
#include <cstdlib>
#include <string>
#include <memory>

#include "cpu/cpu_backend.h"
#include "gyre/backend.h"
#include "gyre/error.h"

namespace gyre {

#ifdef GYRE_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<ModelWeights> weights);  // src/cuda/
bool cuda_device_available();
#endif

std::unique_ptr<Backend> make_backend(const std::string& kind, std::shared_ptr<ModelWeights> weights, int num_threads) {
  if (kind == "cpu") return std::make_unique<CpuBackend>(std::move(weights), num_threads);
  if (kind == "auto") {
#ifdef GYRE_HAVE_CUDA
    if (cuda_device_available()) return make_cuda_backend(std::move(weights));
#endif
    return std::make_unique<CpuBackend>(std::move(weights), num_threads);
  }
  if (kind == "cuda") {
#ifdef GYRE_HAVE_CUDA
    if (!cuda_device_available()) throw Error("backend 'cuda': no CUDA device is available");
    return make_cuda_backend(std::move(weights));
#else
    throw Error("backend 'cuda': this build has no CUDA backend (nvcc was not found at build time)");
#endif
  }
  throw Error("backend '" + kind + "' is unknown (expected auto, cpu or cuda)");
}

void Backend::sample(const std::vector<SampleRequest>&, std::vector<SampledToken>&) {
  throw Error(std::string("backend '") + name() + "' does not sample: the engine samples on the host");
}

}  // namespace gyre
