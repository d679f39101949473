// Linear layers on tensor cores: C[m, n] = sum_k A[m, k] * W[n, k], f16/bf16 operands,
// float32 accumulation and output. W keeps the Hugging Face layout [out, in] (row-major), so
// both operands are K-contiguous ("TN" in BLAS terms).
//
// Two implementations: an in-house mma.sync kernel (always built) and cuBLASLt (only where the
// toolkit has it: GYRE_HAVE_CUBLASLT). gemm() uses cuBLASLt when built, else the mma kernel.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gyre/tensor.h"

namespace gyre {

// A: [M, K] in `dt` (row stride lda); W: [N, K] in `dt`; C: [M, N] float32 (row stride ldc).
// K must be a multiple of 8 (16-byte rows), as every Llama/Mistral dimension is.
void gemm_mma(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K,
              cudaStream_t stream);
// Same contract; throws where cuBLASLt was not built.
void gemm_cublaslt(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K,
                   cudaStream_t stream);
bool gemm_has_cublaslt();
// Creates cuBLASLt's handle and workspace now (they allocate), not inside a graph capture.
void gemm_prepare();
void gemm(DType dt, const void* A, int lda, const void* W, float* C, int ldc, int M, int N, int K, cudaStream_t stream);

// Weight-only INT8: C[m, n] = scale[n] * sum_k A[m, k] * q[n, k], float32 accumulation.
// A: [M, K] in `dt` (f16/bf16, row stride lda); W: [N, K] int8; scale: [N] float32;
// C: [M, N] float32 (row stride ldc). K and lda must be multiples of 16 and 8, A and W 16-byte
// aligned. gemm_int8 takes the GEMV for M <= kGemvInt8MaxM, else the tensor-core kernel.
constexpr int kGemvInt8MaxM = 8;
void gemm_int8(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
               int K, cudaStream_t stream);
void gemv_int8(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M, int N,
               int K, cudaStream_t stream);  // M <= kGemvInt8MaxM
void gemm_int8_mma(DType dt, const void* A, int lda, const int8_t* W, const float* scale, float* C, int ldc, int M,
                   int N, int K, cudaStream_t stream);

}  // namespace gyre
