// PTX wrappers shared by the kernels: cp.async with zero-fill, ldmatrix.x4 (plain and .trans),
// mma.sync m16n8k16 with float32 accumulation, and a streaming 16-byte global load. Inline PTX lives only here;
// under GYRE_CUDA_EMULATION each wrapper has a twin in the SIMT runtime (native/emu/).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#ifdef GYRE_CUDA_EMULATION
#include <cstring>
namespace simt {
template <int kCount, bool kTrans> void op_ldmatrix(Thread* const* lanes, unsigned mask);
template <bool kBf16> void op_mma_m16n8k16(Thread* const* lanes, unsigned mask);
}  // namespace simt

namespace gyre {
namespace ptx {

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  ::simt::cp_async(smem, gmem, valid ? 16 : 0);
}
__device__ __forceinline__ void cp_async_commit() { ::simt::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { ::simt::cp_async_wait(N); }

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  ::simt::Thread* t = ::simt::g_thread;
  std::memcpy(t->in, &smem, sizeof smem);
  ::simt::collective(::simt::op_ldmatrix<4, false>, 0xffffffffu);
  for (int i = 0; i < 4; ++i) r[i] = t->out[i];
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  ::simt::Thread* t = ::simt::g_thread;
  std::memcpy(t->in, &smem, sizeof smem);
  ::simt::collective(::simt::op_ldmatrix<4, true>, 0xffffffffu);
  for (int i = 0; i < 4; ++i) r[i] = t->out[i];
}

template <typename T> struct Mma;
template <typename T, bool kBf16>
struct MmaEmu {
  static __device__ __forceinline__ void run(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    ::simt::Thread* t = ::simt::g_thread;
    for (int i = 0; i < 4; ++i) t->in[i] = a[i];
    t->in[4] = b0;
    t->in[5] = b1;
    std::memcpy(&t->in[6], d, sizeof d);
    ::simt::collective(::simt::op_mma_m16n8k16<kBf16>, 0xffffffffu);
    std::memcpy(d, t->out, sizeof d);
  }
};
template <> struct Mma<__half> : MmaEmu<__half, false> {};
template <> struct Mma<__nv_bfloat16> : MmaEmu<__nv_bfloat16, true> {};

// ld.global.nc.L1::no_allocate.v4.u32
__device__ __forceinline__ uint4 ld_streaming16(const void* p) {
  uint4 v;
  std::memcpy(&v, p, 16);
  return v;
}

}  // namespace ptx
}  // namespace gyre
#else
namespace gyre {
namespace ptx {

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(size) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}
// Transposed 8x8 fragments: from rows of keys x columns of d, each thread gets the
// (k = 2 * (lane % 4) + {0, 1}, n = lane / 4) pairs an mma B operand wants.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}

template <typename T> struct Mma;
template <> struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <> struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// ld.global.nc.L1::no_allocate.v4.u32: 16 bytes that stream past L1.
__device__ __forceinline__ uint4 ld_streaming16(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

}  // namespace ptx
}  // namespace gyre
#endif  // GYRE_CUDA_EMULATION
