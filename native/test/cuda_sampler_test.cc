// The device sampler against the engine's CPU Sampler on the same logits: greedy, temperature,
// top-k, top-p, min-p, their mixes, the penalties, seeded draws at many output indices, and
// logprobs with top n. Ids must be equal; logprobs within 1e-4 (the log-softmax normaliser is a
// tree sum on the device). Rows with more candidates than the device keeps go to the host.
#include "check.h"

#ifdef GYRE_HAVE_CUDA
#include <random>

#include "cuda_test_util.h"
#include "cuda/device_sampler.h"
#include "engine/sampler.h"

using namespace gyre;
using namespace gyre_test;

namespace {

constexpr int kVocab = 3000;

SamplingParams params(float temperature, int top_k = 0, float top_p = 1.0f, float min_p = 0.0f, int logprobs = -1) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.logprobs = logprobs;
  return p;
}

// Rows of logits: peaked, medium, and with exact ties at the top; or all nearly flat (`flat`).
std::vector<float> make_logits(int rows, std::mt19937& rng, bool flat) {
  std::vector<float> l(size_t(rows) * kVocab);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int r = 0; r < rows; ++r) {
    const float spread = flat ? 0.3f : r % 3 == 0 ? 4.0f : r % 3 == 1 ? 1.5f : 2.0f;
    for (int v = 0; v < kVocab; ++v) l[size_t(r) * kVocab + v] = spread * normal(rng);
    if (r % 3 == 2) {  // ties: the lowest id wins
      float* row = &l[size_t(r) * kVocab];
      const float top = *std::max_element(row, row + kVocab) + 1.0f;
      row[1700] = row[300] = row[2999] = top;
    }
  }
  return l;
}

struct Outcome {
  int host_rows = 0;
};

// Samples every row with `p` on both samplers at several output indices and seeds.
Outcome compare(const SamplingParams& p, const char* what, bool penalties = false, bool flat = false) {
  std::mt19937 rng(std::hash<std::string>{}(what));
  const int rows = 6;
  const std::vector<float> logits = make_logits(rows, rng, flat);
  auto d_logits = to_device(logits);
  DeviceSampler device(kVocab);
  Sampler cpu(kVocab);
  std::vector<std::vector<int32_t>> tokens(rows);
  const int num_prompt = 5;
  for (auto& t : tokens)
    for (int i = 0; i < num_prompt; ++i) t.push_back(static_cast<int32_t>(rng() % kVocab));
  Outcome o;
  for (int step = 0; step < 6; ++step) {
    std::vector<SampleRequest> req;
    for (int r = 0; r < rows; ++r) req.push_back({r, &p, &tokens[r], num_prompt, 1000u + r * 7919u});
    std::vector<SampledToken> got;
    device.sample(d_logits.get<float>(), req, got, nullptr);
    CHECK_EQ(got.size(), size_t(rows));
    for (int r = 0; r < rows; ++r) {
      const SampledToken want = cpu.sample(&logits[size_t(r) * kVocab], p, tokens[r], num_prompt, req[r].seed);
      CHECK_MSG(got[r].token == want.token,
                what << " row " << r << " step " << step << ": device " << got[r].token << ", cpu " << want.token);
      if (p.logprobs >= 0) {
        CHECK_MSG(std::fabs(got[r].logprob - want.logprob) <= 1e-4f,
                  what << " row " << r << ": logprob " << got[r].logprob << " vs " << want.logprob);
        CHECK_EQ(got[r].top.size(), want.top.size());
        for (size_t k = 0; k < want.top.size(); ++k) {
          CHECK_MSG(got[r].top[k].token == want.top[k].token, what << " row " << r << " top " << k);
          CHECK(std::fabs(got[r].top[k].logprob - want.top[k].logprob) <= 1e-4f);
        }
      }
      // The next step sees this token (penalties, the draw's output index); repeats make counts > 1.
      tokens[r].push_back(penalties && step % 2 ? tokens[r][num_prompt] : want.token);
    }
  }
  o.host_rows = static_cast<int>(device.num_host_rows());
  return o;
}

}  // namespace

TEST(host_greedy_is_temperature_0_or_top_k_1) {
  CHECK(sampling_is_greedy(params(0.0f)));
  CHECK(sampling_is_greedy(params(1e-5f)));
  CHECK(sampling_is_greedy(params(0.8f, 1)));
  CHECK(!sampling_is_greedy(params(0.8f, 2)));
}

TEST(device_sampler_greedy_and_logprobs) {
  CHECK_EQ(compare(params(0.0f), "greedy").host_rows, 0);
  CHECK_EQ(compare(params(0.0f, 0, 1.0f, 0.0f, 0), "greedy logprobs 0").host_rows, 0);
  CHECK_EQ(compare(params(0.7f, 1, 1.0f, 0.0f, 5), "top_k 1 logprobs 5").host_rows, 0);
  CHECK_EQ(compare(params(1.0f, 0, 1.0f, 0.0f, 20), "full draw logprobs 20").host_rows, 0);
}

TEST(device_sampler_seeded_draws_match_the_cpu) {
  CHECK_EQ(compare(params(1.0f), "full vocabulary").host_rows, 0);
  CHECK_EQ(compare(params(0.6f), "temperature 0.6").host_rows, 0);
  CHECK_EQ(compare(params(0.8f, 40), "top_k 40").host_rows, 0);
  CHECK_EQ(compare(params(1.0f, 1024), "top_k 1024").host_rows, 0);
  CHECK_EQ(compare(params(0.9f, 50, 0.9f), "top_k 50 top_p 0.9").host_rows, 0);
  CHECK_EQ(compare(params(1.0f, 0, 0.7f), "top_p 0.7").host_rows, 0);
  CHECK_EQ(compare(params(1.0f, 0, 1.0f, 0.05f), "min_p 0.05").host_rows, 0);
  CHECK_EQ(compare(params(1.2f, 30, 1.0f, 0.1f), "top_k 30 min_p 0.1").host_rows, 0);
  CHECK_EQ(compare(params(1.0f, 0, 0.8f, 0.02f, 3), "top_p 0.8 min_p 0.02 logprobs 3").host_rows, 0);
}

TEST(device_sampler_penalties_match_the_cpu) {
  SamplingParams p = params(0.0f);
  p.repetition_penalty = 1.5f;
  CHECK_EQ(compare(p, "greedy repetition", true).host_rows, 0);
  p = params(0.9f, 20, 1.0f, 0.0f, 2);
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.7f;
  CHECK_EQ(compare(p, "top_k 20 all penalties", true).host_rows, 0);
  p = params(1.0f);
  p.presence_penalty = -1.0f;
  p.frequency_penalty = 2.0f;
  CHECK_EQ(compare(p, "full presence frequency", true).host_rows, 0);
}

// Past the device's candidate limit the host samples the row: still the CPU's token.
TEST(device_sampler_leaves_wide_rows_to_the_host) {
  CHECK(compare(params(1.0f, 2000), "top_k 2000").host_rows > 0);
  CHECK(compare(params(1.0f, 0, 0.9f), "flat top_p 0.9", false, true).host_rows > 0);
  CHECK(compare(params(1.0f, 0, 1.0f, 0.01f), "flat min_p 0.01", false, true).host_rows > 0);
}

int main(int argc, char** argv) { return cuda_test_main(argc, argv); }

#else
GYRE_SKIP_MAIN("no CUDA backend in this build")
#endif
