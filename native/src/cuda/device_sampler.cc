#include "cuda/device_sampler.h"

#include <algorithm>
#include <cstring>

namespace gyre {
namespace {

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

bool penalized(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

// Distinct in-vocabulary tokens of `tokens`, each with whether it is seen (repetition) and its
// count among the output tokens (presence, frequency): what apply_penalties reads.
void add_penalties(const SampleRequest& r, int vocab, std::vector<DevicePenalty>& out) {
  std::vector<std::pair<int32_t, bool>> all;  // (token, in the output)
  const std::vector<int32_t>& t = *r.tokens;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] >= 0 && t[i] < vocab) all.push_back({t[i], static_cast<int>(i) >= r.num_prompt_tokens});
  std::sort(all.begin(), all.end());
  const bool rep = r.params->repetition_penalty != 1.0f;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    int outputs = 0;
    for (; j < all.size() && all[j].first == all[i].first; ++j) outputs += all[j].second;
    if (rep || outputs > 0) out.push_back({all[i].first, rep ? 1 : 0, outputs});
    i = j;
  }
}

}  // namespace

DeviceSampler::DeviceSampler(int vocab_size) : vocab_size_(vocab_size), host_sampler_(vocab_size), row_(vocab_size) {}

DeviceSampler::~DeviceSampler() {
  if (pinned_) cudaFreeHost(pinned_);
}

void* DeviceSampler::host(size_t bytes) {
  if (bytes > pinned_bytes_) {
    if (pinned_) CUDA_CHECK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    pinned_bytes_ = 0;
    CUDA_CHECK(cudaMallocHost(&pinned_, bytes * 2));
    pinned_bytes_ = bytes * 2;
  }
  return pinned_;
}

void DeviceSampler::sample(const float* logits, const std::vector<SampleRequest>& requests,
                           std::vector<SampledToken>& out, cudaStream_t stream) {
  const int n = static_cast<int>(requests.size());
  out.assign(n, SampledToken{});
  if (n == 0) return;
  std::vector<DeviceSampleJob> jobs(n);
  std::vector<DevicePenalty> penalties;
  std::vector<bool> on_host(n, false);
  int num_top = 0;
  for (int i = 0; i < n; ++i) {
    const SampleRequest& r = requests[i];
    const SamplingParams& p = *r.params;
    DeviceSampleJob& j = jobs[i];
    j.row = r.row;
    j.greedy = sampling_is_greedy(p) ? 1 : 0;
    j.top_k = p.top_k;
    j.inv_temperature = j.greedy ? 1.0f : 1.0f / p.temperature;  // as Sampler::draw computes it
    j.top_p = p.top_p;
    j.min_p = p.min_p;
    j.repetition = p.repetition_penalty;
    j.presence = p.presence_penalty;
    j.frequency = p.frequency_penalty;
    j.penalty_begin = static_cast<int32_t>(penalties.size());
    if (penalized(p)) add_penalties(r, vocab_size_, penalties);
    j.num_penalties = static_cast<int32_t>(penalties.size()) - j.penalty_begin;
    j.uniform = j.greedy ? 0.0 : seeded_uniform(r.seed, r.tokens->size() - r.num_prompt_tokens);
    j.num_top = p.logprobs < 0 ? -1 : std::min(p.logprobs, vocab_size_);
    if (j.num_top > kMaxSampleCandidates) {
      on_host[i] = true;
      j.num_top = -1;
    }
    j.top_begin = num_top;
    num_top += std::max(0, j.num_top);
  }

  // In: jobs | penalties. Out: results | top ids | top logprobs. One copy each way.
  const size_t jobs_bytes = align_up(sizeof(DeviceSampleJob) * n);
  const size_t in_bytes = jobs_bytes + align_up(sizeof(DevicePenalty) * std::max<size_t>(1, penalties.size()));
  const size_t res_bytes = align_up(sizeof(DeviceSampleResult) * n), ids_bytes = align_up(4 * size_t(num_top));
  const size_t out_bytes = res_bytes + 2 * ids_bytes + 256;
  char* staging = static_cast<char*>(host(std::max(in_bytes, out_bytes)));
  std::memcpy(staging, jobs.data(), sizeof(DeviceSampleJob) * n);
  if (!penalties.empty()) std::memcpy(staging + jobs_bytes, penalties.data(), sizeof(DevicePenalty) * penalties.size());
  in_.reserve(in_bytes);
  out_.reserve(out_bytes);
  scratch_.reserve(sizeof(float) * sample_scratch_floats(n, vocab_size_));
  CUDA_CHECK(cudaMemcpyAsync(in_.get(), staging, in_bytes, cudaMemcpyHostToDevice, stream));
  char* d_out = out_.get<char>();
  sample_rows(logits, vocab_size_, in_.get<DeviceSampleJob>(),  n,
              reinterpret_cast<const DevicePenalty*>(in_.get<char>() + jobs_bytes), scratch_.get<float>(),
              reinterpret_cast<DeviceSampleResult*>(d_out), reinterpret_cast<int32_t*>(d_out + res_bytes),
              reinterpret_cast<float*>(d_out + res_bytes + ids_bytes), stream);
  CUDA_CHECK(cudaMemcpyAsync(staging, d_out, out_bytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));

  const auto* results = reinterpret_cast<const DeviceSampleResult*>(staging);
  const auto* top_ids = reinterpret_cast<const int32_t*>(staging + res_bytes);
  const auto* top_lp = reinterpret_cast<const float*>(staging + res_bytes + ids_bytes);
  for (int i = 0; i < n; ++i) {
    const SampleRequest& r = requests[i];
    if (on_host[i] || results[i].status != 0) {
      CUDA_CHECK(cudaMemcpy(row_.data(), logits + static_cast<int64_t>(r.row) * vocab_size_,
                            sizeof(float) * vocab_size_, cudaMemcpyDeviceToHost));
      out[i] = host_sampler_.sample(row_.data(), *r.params, *r.tokens, r.num_prompt_tokens, r.seed);
      ++num_host_rows_;
      continue;
    }
    out[i].token = results[i].token;
    if (jobs[i].num_top >= 0) {
      out[i].logprob = results[i].logprob;
      for (int k = 0; k < jobs[i].num_top; ++k)
        out[i].top.push_back({top_ids[jobs[i].top_begin + k], top_lp[jobs[i].top_begin + k]});
    }
  }
}

}  // namespace gyre
