// The cuBLASLt GEMM, built only where the toolkit ships cuBLASLt (GYRE_HAVE_CUBLASLT).
// Row-major C[M, N] = A[M, K] . W[N, K]^T is column-major C^T[N, M] = op_T(W) . A, so W is
// cuBLAS's "A" (transposed) and the activations its "B".
//
// Plans are cached: descriptors and the heuristic's algorithm are made once per
// (M bucket, N, K, dtype, lda, ldc) and reused, so a decode step does no planning at all.
// Buckets: every M up to kExactM (decode batches: the algorithm is the one for that M), then
// powers of two (the algorithm chosen for the bucket's largest M; a call with a smaller M sets
// the layouts' column count). If cuBLASLt refuses a bucket's algorithm for some M, that M gets
// its own exact plan and the call is retried.
#include "cuda/common.cuh"
#include "cuda/gemm.cuh"

#ifdef GYRE_HAVE_CUBLASLT
#include <cublasLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace gyre {
namespace {

#define CUBLAS_CHECK(call)                                                                         \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      throw Error(std::string("cuBLASLt error ") + std::to_string(static_cast<int>(s_)) + ": " #call); \
  } while (0)

constexpr size_t kWorkspaceBytes = 32u << 20;
constexpr int kExactM = 64;

int m_bucket(int M) {
  if (M <= kExactM) return M;
  int b = kExactM;
  while (b < M) b *= 2;
  return b;
}

// One GEMM shape's descriptors and algorithm. lb and lc are made for `planned_m` columns and
// re-pointed at the caller's M under the cache lock.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  int planned_m = 0, current_m = 0;
  ~Plan() {
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// (M bucket or exact M, N, K, dtype, lda, ldc, exact): the last flag keeps exact re-plans apart.
using PlanKey = std::tuple<int, int, int, int, int, int, bool>;

// One handle, workspace and plan cache per process, created on first use; the lock covers the
// cache and the layouts' column counts, which stay fixed from set to enqueue.
struct Lt {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer workspace;
  std::mutex mutex;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
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

std::unique_ptr<Plan> make_plan(Lt& s, cudaDataType_t in, int planned_m, int N, int K, int lda, int ldc) {
  auto p = std::make_unique<Plan>();
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, in, K, N, K));            // W: column-major [K, N]
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, in, K, planned_m, lda));  // A: column-major [K, M]
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, N, planned_m, ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const size_t ws = kWorkspaceBytes;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                           sizeof(ws));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(s.handle, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &heur, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  CUBLAS_CHECK(st);
  if (found == 0)
    throw Error("gemm_cublaslt: no algorithm for M " + std::to_string(planned_m) + " N " + std::to_string(N) + " K " +
                std::to_string(K));
  p->algo = heur.algo;
  p->planned_m = p->current_m = planned_m;
  return p;
}

Plan& plan_for(Lt& s, const PlanKey& key, cudaDataType_t in, int planned_m, int N, int K, int lda, int ldc) {
  std::unique_ptr<Plan>& slot = s.plans[key];
  if (!slot) slot = make_plan(s, in, planned_m, N, K, lda, ldc);
  return *slot;
}

cublasStatus_t run_plan(Lt& s, Plan& p, const void* A, const void* W, float* C, int M, cudaStream_t stream) {
  if (p.current_m != M) {
    const uint64_t cols = static_cast<uint64_t>(M);
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.lb, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.lc, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)));
    p.current_m = M;
  }
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(s.handle, p.op, &alpha, W, p.la, A, p.lb, &beta, C, p.lc, C, p.lc, &p.algo,
                        s.workspace.get(), kWorkspaceBytes, stream);
}

}  // namespace

bool gemm_has_cublaslt() { return true; }
void gemm_prepare() { lt(); }

void gemm_cublaslt(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K,
                   cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  if (dt != DType::kF16 && dt != DType::kBF16) throw Error("gemm_cublaslt: dtype must be f16 or bf16");
  const cudaDataType_t in = dt == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  Lt& s = lt();
  std::lock_guard<std::mutex> lock(s.mutex);
  const int bucket = m_bucket(M);
  Plan& p = plan_for(s, PlanKey{bucket, N, K, static_cast<int>(dt), lda, ldc, false}, in, bucket, N, K, lda, ldc);
  cublasStatus_t st = run_plan(s, p, A, W, C, M, stream);
  if ((st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) && M != p.planned_m) {
    // The bucket's algorithm does not take this M: plan this M on its own.
    Plan& exact = plan_for(s, PlanKey{M, N, K, static_cast<int>(dt), lda, ldc, true}, in, M, N, K, lda, ldc);
    st = run_plan(s, exact, A, W, C, M, stream);
  }
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error("cuBLASLt error " + std::to_string(static_cast<int>(st)) + ": cublasLtMatmul M " + std::to_string(M) +
                " N " + std::to_string(N) + " K " + std::to_string(K));
}

}  // namespace gyre

#else  // no cuBLASLt in this toolkit

namespace gyre {
bool gemm_has_cublaslt() { return false; }
void gemm_prepare() {}
void gemm_cublaslt(DType, const void*, int, const void*, float*, int, int, int, int, cudaStream_t) {
  throw Error("gemm_cublaslt: this build has no cuBLASLt (the toolkit had none at build time)");
}
}  // namespace gyre

#endif
