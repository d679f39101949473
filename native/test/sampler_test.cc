#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "check.h"

using namespace gyre;

namespace {

std::vector<float> random_logits(int vocab_size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(vocab_size);
  for (float& l : logits) l = normal(rng);
  return logits;
}

SamplingParams sampling(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  return p;
}

std::set<int32_t> support(Sampler& sampler, const std::vector<float>& logits, const SamplingParams& p, int num_draws) {
  std::set<int32_t> seen;
  const std::vector<int32_t> prompt = {1};
  for (int i = 0; i < num_draws; ++i) seen.insert(sampler.sample(logits.data(), p, prompt, 1, 1000 + i).token);
  return seen;
}

}  // namespace

TEST(greedy_is_argmax_with_ties_to_lowest_id) {
  Sampler sampler(6);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f, 0.0f};
  CHECK_EQ(sampler.sample(logits.data(), sampling(0.0f), {0}, 1, 1).token, 1);
  SamplingParams top1 = sampling(1.0f);
  top1.top_k = 1;
  CHECK_EQ(sampler.sample(logits.data(), top1, {0}, 1, 7).token, 1);
}

TEST(top_k_restricts_support) {
  const int vocab = 32000;
  Sampler sampler(vocab);
  std::vector<float> logits = random_logits(vocab, 3);
  std::vector<int32_t> order(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  SamplingParams p = sampling(5.0f);  // hot: the tail would show up if it were allowed
  p.top_k = 5;
  std::set<int32_t> allowed(order.begin(), order.begin() + 5);
  std::set<int32_t> seen = support(sampler, logits, p, 3000);
  for (int32_t t : seen) CHECK_MSG(allowed.count(t), "token " << t << " outside the top 5");
  CHECK_EQ(seen.size(), 5u);
}

TEST(top_p_keeps_the_smallest_set_reaching_p) {
  const int vocab = 1000;
  Sampler sampler(vocab);
  std::vector<float> logits(vocab, -30.0f);
  for (int i = 500; i < 700; ++i) logits[i] = 0.0f;  // 200 equally likely tokens
  SamplingParams p = sampling(1.0f);
  p.top_p = 0.499f;  // 100 of them; ties go to the lowest ids (needs a sort deeper than 64)
  std::set<int32_t> seen = support(sampler, logits, p, 5000);
  for (int32_t t : seen) CHECK_MSG(t >= 500 && t < 600, "token " << t << " outside the top-p set");
  CHECK(seen.size() > 90);

  std::vector<float> probs = {0.5f, 0.3f, 0.15f, 0.05f};
  std::vector<float> small(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) small[i] = std::log(probs[i]);
  Sampler sampler4(4);
  p.top_p = 0.75f;
  CHECK((support(sampler4, small, p, 2000) == std::set<int32_t>{0, 1}));
  p.top_p = 0.85f;
  CHECK((support(sampler4, small, p, 2000) == std::set<int32_t>{0, 1, 2}));
}

TEST(min_p_drops_tokens_below_a_share_of_the_max) {
  std::vector<float> probs = {0.4f, 0.25f, 0.19f, 0.1f, 0.06f};
  std::vector<float> logits(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) logits[i] = std::log(probs[i]);
  Sampler sampler(5);
  SamplingParams p = sampling(1.0f);
  p.min_p = 0.45f;  // keep p >= 0.18
  CHECK((support(sampler, logits, p, 3000) == std::set<int32_t>{0, 1, 2}));
  p.min_p = 0.0f;
  CHECK_EQ(support(sampler, logits, p, 3000).size(), 5u);
}

TEST(top_k_then_top_p_then_min_p_combined) {
  const int vocab = 32000;
  Sampler sampler(vocab);
  std::vector<float> logits = random_logits(vocab, 11);
  SamplingParams p = sampling(0.8f);
  p.top_k = 50;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  std::vector<int32_t> order(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::set<int32_t> top50(order.begin(), order.begin() + 50);
  for (int32_t t : support(sampler, logits, p, 2000)) CHECK(top50.count(t));
}

TEST(same_seed_same_tokens) {
  const int vocab = 32000;
  Sampler a(vocab), b(vocab);
  std::vector<float> logits = random_logits(vocab, 5);
  SamplingParams p = sampling(1.0f);
  std::vector<int32_t> ta = {1, 2, 3}, tb = {1, 2, 3};
  int num_differ_from_other_seed = 0;
  for (int i = 0; i < 50; ++i) {
    const int32_t x = a.sample(logits.data(), p, ta, 3, 42).token;
    const int32_t y = b.sample(logits.data(), p, tb, 3, 42).token;
    CHECK_EQ(x, y);
    num_differ_from_other_seed += x != b.sample(logits.data(), p, tb, 3, 43).token;
    ta.push_back(x);  // the output index advances the stream
    tb.push_back(y);
  }
  CHECK(num_differ_from_other_seed > 25);
  // Draws differ along the stream (not one number repeated).
  CHECK(std::set<int32_t>(ta.begin() + 3, ta.end()).size() > 20);
}

TEST(sampling_frequencies_follow_the_softmax) {
  Sampler sampler(2);
  std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  int num_ones = 0;
  const int n = 8000;
  for (int i = 0; i < n; ++i) num_ones += sampler.sample(logits.data(), sampling(1.0f), {0}, 1, i).token;
  CHECK_MSG(std::abs(num_ones / double(n) - 0.75) < 0.02, "share " << num_ones / double(n));
  // Temperature 0.5 squares the odds: p1 = 9 / 10.
  num_ones = 0;
  for (int i = 0; i < n; ++i) num_ones += sampler.sample(logits.data(), sampling(0.5f), {0}, 1, i).token;
  CHECK_MSG(std::abs(num_ones / double(n) - 0.9) < 0.02, "share " << num_ones / double(n));
}

TEST(seeded_uniform_is_uniform_and_deterministic) {
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = seeded_uniform(7, i);
    CHECK(u >= 0.0 && u < 1.0);
    sum += u;
  }
  CHECK(std::abs(sum / 10000 - 0.5) < 0.02);
  CHECK_EQ(seeded_uniform(7, 3), seeded_uniform(7, 3));
  CHECK(seeded_uniform(7, 3) != seeded_uniform(8, 3));
}

TEST(penalties_change_logits_exactly) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.1f;
  p.presence_penalty = 0.3f;
  // prompt {0, 1, 0}, output {2, 2}
  apply_penalties(logits.data(), 5, p, {0, 1, 0, 2, 2}, 3);
  CHECK_EQ(logits[0], 1.0f);    // 2 / 2, once although seen twice
  CHECK_EQ(logits[1], -4.0f);   // -2 * 2
  CHECK(std::abs(logits[2] - (0.5f - 0.2f - 0.3f)) < 1e-7f);  // 1 / 2 - 0.1 * 2 - 0.3
  CHECK_EQ(logits[3], 0.5f);
  CHECK_EQ(logits[4], 3.0f);
  // Presence/frequency ignore prompt tokens.
  std::vector<float> l2 = {1.0f, 1.0f};
  SamplingParams q;
  q.presence_penalty = 1.0f;
  apply_penalties(l2.data(), 2, q, {0, 1}, 1);
  CHECK_EQ(l2[0], 1.0f);
  CHECK_EQ(l2[1], 0.0f);
}

TEST(penalties_steer_greedy) {
  Sampler sampler(3);
  std::vector<float> logits = {1.0f, 0.9f, 0.0f};
  SamplingParams p = sampling(0.0f);
  CHECK_EQ(sampler.sample(logits.data(), p, {0}, 1, 1).token, 0);
  p.repetition_penalty = 1.2f;  // token 0 in the prompt: 1 / 1.2 < 0.9
  CHECK_EQ(sampler.sample(logits.data(), p, {0}, 1, 1).token, 1);
}

TEST(logprobs_are_the_raw_distribution) {
  const int vocab = 320;
  Sampler sampler(vocab);
  std::vector<float> logits = random_logits(vocab, 9);
  SamplingParams p = sampling(0.0f);
  p.repetition_penalty = 3.0f;  // changes the choice's odds, not the reported logprobs
  p.logprobs = vocab;
  SampledToken t = sampler.sample(logits.data(), p, {4, 5}, 2, 1);
  CHECK_EQ(t.top.size(), static_cast<size_t>(vocab));
  double sum = 0;
  for (const TopLogprob& x : t.top) sum += std::exp(static_cast<double>(x.logprob));
  CHECK(std::abs(sum - 1.0) < 1e-4);
  for (size_t i = 1; i < t.top.size(); ++i) CHECK(t.top[i - 1].logprob >= t.top[i].logprob);
  std::vector<float> ls(vocab);
  log_softmax(logits.data(), vocab, ls.data());
  CHECK_EQ(t.logprob, ls[t.token]);
  CHECK_EQ(t.top[0].token, static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  p.logprobs = 0;
  t = sampler.sample(logits.data(), p, {4, 5}, 2, 1);
  CHECK(t.top.empty());
  CHECK_EQ(t.logprob, ls[t.token]);
}

TEST(vocab_ops_exact_enough_and_tie_safe) {
  double max_rel = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.0137f) {
    const double e = std::exp(static_cast<double>(x));
    max_rel = std::max(max_rel, std::abs(exp_nonpositive(x) - e) / e);
  }
  CHECK_MSG(max_rel < 1e-6, "exp relative error " << max_rel);
  CHECK_EQ(exp_nonpositive(0.0f), 1.0f);
  std::vector<float> v = {1.0f, 5.0f, 2.0f, 5.0f, 5.0f, -3.0f};
  CHECK_EQ(first_max(v.data(), 6), 1);
  CHECK_EQ(max_value(v.data(), 6), 5.0f);
  std::vector<int32_t> top(4);
  CHECK_EQ(select_top(v.data(), 6, 3, top.data()), 3);
  CHECK((std::vector<int32_t>(top.begin(), top.begin() + 3) == std::vector<int32_t>{1, 3, 4}));  // ties: lowest ids first
  CHECK_EQ(select_top(v.data(), 6, 4, top.data()), 4);
  CHECK_EQ(top[3], 2);
  // pick_all: the first index whose running sum passes uniform * total, across blocks.
  std::vector<float> w(200, 1.0f);
  std::vector<float> scratch;
  CHECK_EQ(pick_all(w.data(), 200, 0.0, scratch), 0);
  CHECK_EQ(pick_all(w.data(), 200, 0.5, scratch), 100);
  CHECK_EQ(pick_all(w.data(), 200, 0.999, scratch), 199);
  w.assign(200, 0.0f);
  w[130] = 1.0f;
  CHECK_EQ(pick_all(w.data(), 200, 0.7, scratch), 130);
}

// Structured output: a masked token is never drawn, whatever the warpers; logprobs are those of
// the masked distribution; no mask leaves sampling as it was.
TEST(token_mask_restricts_every_path) {
  const int vocab = 32000;
  Sampler sampler(vocab);
  std::vector<float> logits = random_logits(vocab, 11);
  std::vector<uint32_t> mask((vocab + 31) / 32, 0u);
  const std::vector<int32_t> allowed = {5, 77, 4093, 31999};  // unlikely ones: the argmax is elsewhere
  for (int32_t t : allowed) mask[t / 32] |= 1u << (t % 32);
  const int32_t best = *std::max_element(allowed.begin(), allowed.end(),
                                         [&](int32_t a, int32_t b) { return logits[a] < logits[b]; });
  CHECK_EQ(sampler.sample(logits.data(), sampling(0.0f), {1}, 1, 1, mask.data()).token, best);
  SamplingParams variants[5] = {sampling(5.0f), sampling(5.0f), sampling(5.0f), sampling(5.0f), sampling(1.0f)};
  variants[1].top_k = 50;      // the top 50 holds no allowed token
  variants[2].top_p = 0.5f;
  variants[3].min_p = 0.3f;
  variants[4].repetition_penalty = 1.3f;
  variants[4].frequency_penalty = 0.5f;
  for (const SamplingParams& p : variants) {
    std::set<int32_t> seen;
    for (int i = 0; i < 400; ++i) seen.insert(sampler.sample(logits.data(), p, {1, 5, 77}, 1, 900 + i, mask.data()).token);
    for (int32_t t : seen) CHECK_MSG(std::count(allowed.begin(), allowed.end(), t), "token " << t << " is masked");
  }
  // Hot and unwarped, every allowed token shows up.
  std::set<int32_t> seen;
  for (int i = 0; i < 400; ++i) seen.insert(sampler.sample(logits.data(), sampling(50.0f), {1}, 1, i, mask.data()).token);
  CHECK_EQ(seen.size(), allowed.size());

  SamplingParams p = sampling(1.0f);
  p.logprobs = 3;
  SampledToken t = sampler.sample(logits.data(), p, {1}, 1, 3, mask.data());
  CHECK_EQ(t.top.size(), 3u);
  for (const TopLogprob& top : t.top) CHECK(std::count(allowed.begin(), allowed.end(), top.token));
  double mass = 0;
  for (const TopLogprob& top : t.top) mass += std::exp(static_cast<double>(top.logprob));
  CHECK(mass > 0.5 && mass <= 1.0 + 1e-5);  // 3 of the 4 allowed tokens carry most of the mass

  // An all-ones mask samples exactly as no mask.
  std::vector<uint32_t> ones((vocab + 31) / 32, 0xffffffffu);
  for (int i = 0; i < 50; ++i) {
    SamplingParams q = sampling(0.8f);
    q.top_p = 0.9f;
    CHECK_EQ(sampler.sample(logits.data(), q, {1}, 1, i).token,
             sampler.sample(logits.data(), q, {1}, 1, i, ones.data()).token);
  }
}

GYRE_TEST_MAIN
