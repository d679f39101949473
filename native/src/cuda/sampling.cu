// The device sampler (sampling.cuh). Every float operation that decides a token is written
// with _rn intrinsics so nvcc does not fuse it into an FMA: the weights are the CPU's to the bit.
#include "cuda/common.cuh"
#include "cuda/sampling.cuh"

namespace gyre {
namespace {

constexpr int kThreads = 256, kPickBlock = 64, kPickLanes = 8;

// engine/vocab_ops.h exp_nonpositive, operation for operation.
__device__ __forceinline__ float exp_nonpositive(float x) {
  const float shifted = __fadd_rn(__fmul_rn(x, 1.44269504088896341f), 12582912.0f);
  const float n = __fsub_rn(shifted, 12582912.0f);
  const float f = __fsub_rn(__fsub_rn(x, __fmul_rn(n, 0.693145751953125f)), __fmul_rn(n, 1.42860676533018e-06f));
  float p = 1.0f / 5040;
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 720);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 120);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 24);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 6);
  p = __fadd_rn(__fmul_rn(p, f), 0.5f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f);
  const int scale_bits = (__float_as_int(shifted) - 0x4B400000 + 127) << 23;
  return __fmul_rn(p, __int_as_float(scale_bits));
}

__device__ __forceinline__ float shifted_weight(float v, float max_value, float scale) {
  return exp_nonpositive(fmaxf(__fmul_rn(__fsub_rn(v, max_value), scale), -87.0f));
}

// (value descending, id ascending) as one integer that sorts descending.
__device__ __forceinline__ uint64_t value_key(float v, int id) {
  const unsigned u = __float_as_uint(v);
  const unsigned ordered = u ^ ((u >> 31) ? 0xffffffffu : 0x80000000u);
  return (static_cast<uint64_t>(ordered) << 32) | (0xffffffffu - static_cast<unsigned>(id));
}
__device__ __forceinline__ int key_id(uint64_t key) { return static_cast<int>(0xffffffffu - static_cast<unsigned>(key)); }

struct Shared {
  uint64_t keys[kMaxSampleCandidates];
  int hist[256];
  double dscratch[kThreads / 32];
  float fscratch[kThreads / 32];
  int iscratch[kThreads / 32];
  uint64_t prefix;
  int remaining, count, token, status;
  float max_value;
};

// Largest value, ties to the lowest id; every thread gets both.
__device__ void block_argmax(const float* v, int n, Shared& sh, float* max_out, int* id_out) {
  float best = -INFINITY;
  int id = n;
  for (int i = threadIdx.x; i < n; i += kThreads)
    if (v[i] > best || (v[i] == best && i < id)) { best = v[i]; id = i; }
  for (int o = 16; o > 0; o >>= 1) {
    const float b = __shfl_xor_sync(0xffffffffu, best, o);
    const int j = __shfl_xor_sync(0xffffffffu, id, o);
    if (b > best || (b == best && j < id)) { best = b; id = j; }
  }
  __syncthreads();
  if ((threadIdx.x & 31) == 0) { sh.fscratch[threadIdx.x >> 5] = best; sh.iscratch[threadIdx.x >> 5] = id; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w)
      if (sh.fscratch[w] > best || (sh.fscratch[w] == best && sh.iscratch[w] < id)) { best = sh.fscratch[w]; id = sh.iscratch[w]; }
    sh.max_value = best;
    sh.token = id < n ? id : 0;
  }
  __syncthreads();
  *max_out = sh.max_value;
  *id_out = sh.token;
}

// Sum in a fixed tree (per thread, then warps, then thread 0 over warps); every thread gets it.
__device__ double block_sum(double x, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sh.dscratch[threadIdx.x >> 5] = x;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kThreads / 32; ++w) total += sh.dscratch[w];
  return total;
}

// The k largest keys of key(0..n) (k <= kMaxSampleCandidates, distinct keys) into sh.keys[0, k),
// sorted descending: radix select of the k-th key (8 bits a pass), gather, bitonic sort.
template <typename KeyFn>
__device__ void top_keys(KeyFn key, int n, int k, Shared& sh) {
  if (threadIdx.x == 0) { sh.prefix = 0; sh.remaining = k; sh.count = 0; }
  uint64_t mask = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) sh.hist[i] = 0;
    __syncthreads();
    const uint64_t prefix = sh.prefix;
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const uint64_t x = key(i);
      if ((x & mask) == prefix) atomicAdd(&sh.hist[(x >> shift) & 255], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int d = 255, remaining = sh.remaining;
      while (d > 0 && sh.hist[d] < remaining) remaining -= sh.hist[d--];
      sh.prefix = prefix | (static_cast<uint64_t>(d) << shift);
      sh.remaining = remaining;
    }
    mask |= 0xffull << shift;
    __syncthreads();
  }
  const uint64_t kth = sh.prefix;
  int size = 1;
  while (size < k) size *= 2;
  for (int i = threadIdx.x; i < size; i += kThreads) sh.keys[i] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const uint64_t x = key(i);
    if (x >= kth) sh.keys[atomicAdd(&sh.count, 1)] = x;
  }
  __syncthreads();
  for (int span = 2; span <= size; span *= 2)
    for (int stride = span / 2; stride > 0; stride /= 2) {
      for (int i = threadIdx.x; i < size; i += kThreads) {
        const int j = i ^ stride;
        if (j > i) {
          const bool descending = (i & span) == 0;
          const uint64_t a = sh.keys[i], b = sh.keys[j];
          if (descending ? a < b : a > b) { sh.keys[i] = b; sh.keys[j] = a; }
        }
      }
      __syncthreads();
    }
}

// engine/vocab_ops.cc pick_all on weights[0, n): 64-wide block sums (8 float lanes), a double
// total, a walk over the blocks and inside one. Thread 0's result.
__device__ int pick_all(const float* w, int n, double uniform, float* block_sums) {
  const int num_blocks = (n + kPickBlock - 1) / kPickBlock;
  for (int b = threadIdx.x; b < num_blocks; b += kThreads) {
    const int begin = b * kPickBlock, end = min(n, begin + kPickBlock);
    float lane[kPickLanes] = {};
    int i = begin;
    for (; i + kPickLanes <= end; i += kPickLanes)
      for (int j = 0; j < kPickLanes; ++j) lane[j] = __fadd_rn(lane[j], w[i + j]);
    float sum = 0.0f;
    for (int j = 0; j < kPickLanes; ++j) sum = __fadd_rn(sum, lane[j]);
    for (; i < end; ++i) sum = __fadd_rn(sum, w[i]);
    block_sums[b] = sum;
  }
  __syncthreads();
  if (threadIdx.x != 0) return 0;
  double total = 0.0;
  for (int b = 0; b < num_blocks; ++b) total = __dadd_rn(total, block_sums[b]);
  const double target = __dmul_rn(uniform, total);
  double mass = 0.0;
  int b = 0;
  while (b + 1 < num_blocks && __dadd_rn(mass, block_sums[b]) <= target) mass = __dadd_rn(mass, block_sums[b++]);
  const int end = min(n, (b + 1) * kPickBlock);
  for (int i = b * kPickBlock; i < end; ++i) {
    mass = __dadd_rn(mass, w[i]);
    if (target < mass) return i;
  }
  return end - 1;
}

// engine/sampler.cc pick over ids[0, n) in order. Thread 0.
__device__ int pick(const float* w, const uint64_t* keys, int n, double uniform) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) total = __dadd_rn(total, w[key_id(keys[i])]);
  const double target = __dmul_rn(uniform, total);
  double mass = 0.0;
  for (int i = 0; i < n; ++i) {
    mass = __dadd_rn(mass, w[key_id(keys[i])]);
    if (target < mass) return i;
  }
  return n - 1;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits,  // [rows, V]
                                                         int V,
                                                         const DeviceSampleJob* __restrict__ jobs,   // [n]
                                                         const DevicePenalty* __restrict__ penalties,
                                                         float* __restrict__ scratch,  // [n, 2V + V/64]
                                                         DeviceSampleResult* __restrict__ results,  // [n]
                                                         int32_t* __restrict__ top_ids,
                                                         float* __restrict__ top_logprobs) {
  __shared__ Shared sh;
  const DeviceSampleJob job = jobs[blockIdx.x];
  const float* raw = logits + static_cast<int64_t>(job.row) * V;
  float* penalized = scratch + static_cast<int64_t>(blockIdx.x) * (2 * static_cast<int64_t>(V) + (V + 63) / 64);
  float* w = penalized + V;
  float* block_sums = w + V;
  if (threadIdx.x == 0) sh.status = 0;  // read only after the barriers below

  const float* l = raw;
  if (job.num_penalties > 0) {
    for (int i = threadIdx.x; i < V; i += kThreads) penalized[i] = raw[i];
    __syncthreads();
    for (int i = threadIdx.x; i < job.num_penalties; i += kThreads) {  // distinct tokens: no write conflicts
      const DevicePenalty p = penalties[job.penalty_begin + i];
      float x = penalized[p.token];
      if (job.repetition != 1.0f && p.seen) x = x > 0 ? __fdiv_rn(x, job.repetition) : __fmul_rn(x, job.repetition);
      if ((job.presence != 0.0f || job.frequency != 0.0f) && p.output_count > 0)
        x = __fsub_rn(x, __fadd_rn(__fmul_rn(job.frequency, static_cast<float>(p.output_count)), job.presence));
      penalized[p.token] = x;
    }
    __syncthreads();
    l = penalized;
  }
  float max_value;
  int token;
  block_argmax(l, V, sh, &max_value, &token);

  bool host = false;  // the row is left to the host sampler (same value in every thread)
  if (!job.greedy) {
    for (int i = threadIdx.x; i < V; i += kThreads) w[i] = shifted_weight(l[i], max_value, job.inv_temperature);
    __syncthreads();
    const bool use_top_k = job.top_k > 0 && job.top_k < V;
    if (!use_top_k && job.top_p >= 1.0f && job.min_p <= 0.0f) {
      const int t = pick_all(w, V, job.uniform, block_sums);
      if (threadIdx.x == 0) sh.token = t;
    } else {
      int num_cand = 0;
      bool sorted = false;  // candidates in sh.keys (sorted) or, unsorted, the whole vocabulary in id order
      host = use_top_k && job.top_k > kMaxSampleCandidates;
      if (use_top_k && !host) {
        top_keys([&](int i) { return value_key(l[i], i); }, V, job.top_k, sh);
        num_cand = job.top_k;
        sorted = true;
      }
      if (!host && job.top_p < 1.0f) {
        double total = 0.0;
        if (sorted) {
          if (threadIdx.x == 0)
            for (int i = 0; i < num_cand; ++i) total = __dadd_rn(total, w[key_id(sh.keys[i])]);
        } else {
          double part = 0.0;
          for (int i = threadIdx.x; i < V; i += kThreads) part = __dadd_rn(part, w[i]);
          total = block_sum(part, sh);
          const int c = min(V, kMaxSampleCandidates);
          top_keys([&](int i) { return (static_cast<uint64_t>(__float_as_uint(w[i])) << 32) |
                                       (0xffffffffu - static_cast<unsigned>(i)); },
                   V, c, sh);
          num_cand = c;
        }
        if (threadIdx.x == 0) {
          const double target = __dmul_rn(static_cast<double>(job.top_p), total);
          double mass = 0.0;
          int m = 0;
          while (m < num_cand && mass < target) mass = __dadd_rn(mass, w[key_id(sh.keys[m++])]);
          if (!sorted && mass < target && num_cand < V) sh.status = 1;  // the set is wider than the candidates
          sh.count = max(m, 1);
        }
        __syncthreads();
        host = sh.status != 0;
        num_cand = sh.count;
        sorted = true;
      }
      if (!host && job.min_p > 0.0f) {
        if (sorted) {
          if (threadIdx.x == 0) {
            int keep = 0;
            for (int i = 0; i < num_cand; ++i)
              if (w[key_id(sh.keys[i])] >= job.min_p) sh.keys[keep++] = sh.keys[i];
            sh.count = max(keep, 1);
          }
        } else {  // the passing ids in id order: contiguous chunks per thread, offsets by a scan
          const int chunk = (V + kThreads - 1) / kThreads, begin = threadIdx.x * chunk, end = min(V, begin + chunk);
          int mine = 0;
          for (int i = begin; i < end; ++i) mine += w[i] >= job.min_p;
          __syncthreads();
          sh.hist[threadIdx.x] = mine;  // kThreads == 256 == hist size
          __syncthreads();
          if (threadIdx.x == 0) {
            int total = 0;
            for (int t = 0; t < kThreads; ++t) { const int c = sh.hist[t]; sh.hist[t] = total; total += c; }
            sh.count = total;
            if (total > kMaxSampleCandidates) sh.status = 1;
          }
          __syncthreads();
          host = sh.status != 0;
          if (!host) {
            int at = sh.hist[threadIdx.x];
            for (int i = begin; i < end; ++i)
              if (w[i] >= job.min_p) sh.keys[at++] = 0xffffffffu - static_cast<unsigned>(i);
          }
          if (threadIdx.x == 0 && sh.count == 0) { sh.keys[0] = 0xffffffffu; sh.count = 1; }  // id 0, as the CPU
        }
        __syncthreads();
        num_cand = sh.count;
      }
      __syncthreads();
      if (threadIdx.x == 0 && !host) sh.token = key_id(sh.keys[pick(w, sh.keys, num_cand, job.uniform)]);
    }
    __syncthreads();
    token = sh.token;
  }

  DeviceSampleResult* out = results + blockIdx.x;
  if (job.num_top >= 0 && !host) {
    float raw_max;
    int raw_arg;
    block_argmax(raw, V, sh, &raw_max, &raw_arg);
    double part = 0.0;
    for (int i = threadIdx.x; i < V; i += kThreads) part = __dadd_rn(part, shifted_weight(raw[i], raw_max, 1.0f));
    const double log_z = static_cast<double>(raw_max) + log(block_sum(part, sh));
    if (job.num_top > 0) {
      top_keys([&](int i) { return value_key(raw[i], i); }, V, job.num_top, sh);
      for (int i = threadIdx.x; i < job.num_top; i += kThreads) {
        const int id = key_id(sh.keys[i]);
        top_ids[job.top_begin + i] = id;
        top_logprobs[job.top_begin + i] = static_cast<float>(static_cast<double>(raw[id]) - log_z);
      }
    }
    if (threadIdx.x == 0) out->logprob = static_cast<float>(static_cast<double>(raw[token]) - log_z);
  }
  if (threadIdx.x == 0) {
    out->token = token;
    out->status = host ? 1 : 0;
  }
}

}  // namespace

void sample_rows(const float* logits, int vocab, const DeviceSampleJob* jobs, int n, const DevicePenalty* penalties,
                 float* scratch, DeviceSampleResult* results, int32_t* top_ids, float* top_logprobs,
                 cudaStream_t stream) {
  if (n == 0) return;
  launch(sample_kernel, dim3(n), kThreads, 0, stream, logits, vocab, jobs, penalties, scratch, results, top_ids,
         top_logprobs);
}

}  // namespace gyre
