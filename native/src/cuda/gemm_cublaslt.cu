// The cuBLASLt GEMM, built only where the toolkit ships cuBLASLt (GYRE_HAVE_CUBLASLT).
// Row-major C[M, N] = A[M, K] . W[N, K]^T is column-major C^T[N, M] = op_T(W) . A, so W is
// cuBLAS's "A" (transposed) and the activations its "B".
#include "cuda/common.cuh"
#include "cuda/gemm.cuh"

#ifdef GYRE_HAVE_CUBLASLT
#include <cublasLt.h>


namespace gyre {
namespace {

#define CUBLAS_CHECK(call)                                                                         \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      throw Error(std::string("cuBLASLt error ") + std::to_string(static_cast<int>(s_)) + ": " #call); \
  } while (0)

constexpr size_t kWorkspaceBytes = 32u << 20;

// One handle and workspace per device, created on first use; the backend runs one stream.
struct Lt {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer workspace;
};
Lt& lt() {
  static Lt* state = [] {
    auto* s = new Lt;
    CUBLAS_CHECK(cublasLtCreate(&s->handle));
    s->workspace.reserve(kWorkspaceBytes);
    return s;
  }();
  return *state;
}

}  // namespace

bool gemm_has_cublaslt() { return true; }

void gemm_cublaslt(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K,
                   cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  if (dt != DType::kF16 && dt != DType::kBF16) throw Error("gemm_cublaslt: dtype must be f16 or bf16");
  const cudaDataType_t in = dt == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  Lt& s = lt();
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  auto cleanup = [&] {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  };
  try {
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, in, K, N, K));    // W: column-major [K, N]
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, in, K, M, lda));  // A: column-major [K, M]
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, ldc));
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kWorkspaceBytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t heur{};
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(s.handle, op, la, lb, lc, lc, pref, 1, &heur, &found));
    if (found == 0) throw Error("gemm_cublaslt: no algorithm for M " + std::to_string(M) + " N " + std::to_string(N));
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(s.handle, op, &alpha, W, la, A, lb, &beta, C, lc, C, lc, &heur.algo,
                                s.workspace.get(), ws, stream));
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

}  // namespace gyre

#else  // no cuBLASLt in this toolkit

namespace gyre {
bool gemm_has_cublaslt() { return false; }
void gemm_cublaslt(DType, const void*, int, const void*, float*, int, int, int, int, cudaStream_t) {
  throw Error("gemm_cublaslt: this build has no cuBLASLt (the toolkit had none at build time)");
}
}  // namespace gyre

#endif
