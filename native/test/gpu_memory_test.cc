// GPU memory sizing at A10G numbers (gyre/gpu_memory.h): pure arithmetic, so it runs anywhere.
// The CUDA backend reserves exactly step_buffers() before it sizes the pool
// (cuda_forward_test's largest_planned_step_allocates_nothing checks that on a device).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "check.h"
#include "gyre/gpu_memory.h"
#include "gyre/shapes.h"

using namespace gyre;

namespace {

const ModelConfig kLlama7b = shape_config("llama-2-7b");
const ModelConfig kMistral7b = shape_config("mistral-7b");

// By hand from the shape, without the alignment: the plan's figure is at most 256 bytes more per tensor.
int64_t f16_weight_bytes(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, kv = int64_t(c.num_kv_heads) * c.head_dim;
  return 2 * (c.num_layers * (H * H * 2 + 2 * H * kv + 3 * H * I) + 2 * H * c.vocab_size) + 4 * (2 * c.num_layers + 1) * H;
}
int64_t kv_bytes_per_block(const ModelConfig& c, int block_size) {
  return 2LL * c.num_layers * block_size * c.num_kv_heads * c.head_dim * 2;
}

}  // namespace

TEST(a10g_budget_is_0_9_of_what_it_reports) {
  CHECK_EQ(kA10gTotalBytes, 24146608128LL);  // 23,028 MiB
  CHECK(kA10gBudgetBytes > (20LL << 30) && kA10gBudgetBytes < (205LL << 30) / 10);  // ~20.24 GiB
  const MemoryBudget m = memory_budget(kA10gTotalBytes, kA10gTotalBytes, GpuMemoryOptions{});
  CHECK_EQ(m.budget, kA10gBudgetBytes);
}

TEST(budget_is_the_fraction_capped_by_the_absolute_budget) {
  const int64_t total = 80LL << 30;
  GpuMemoryOptions o;
  o.fraction = 0.5;
  CHECK_EQ(memory_budget(total, total, o).budget, 40LL << 30);
  o.budget = 20LL << 30;
  const MemoryBudget m = memory_budget(total, total - (5LL << 30), o);
  CHECK_EQ(m.budget, 20LL << 30);
  CHECK_EQ(m.kv_bytes, (15LL << 30) - kGpuMarginBytes);  // less what is on the device, less the margin
  o.fraction = 1.5;
  CHECK_THROWS_WITH(memory_budget(total, total, o), "GYRE_GPU_MEMORY_FRACTION");
  o.fraction = 0;
  o.budget = -1;
  CHECK_THROWS_WITH(memory_budget(total, total, o), "GYRE_GPU_MEMORY_BUDGET");
}

TEST(decode_splits_follow_the_visible_keys) {
  // Mistral's window bounds a decode token's keys however long the sequence: 8 splits of 512, not 64.
  CHECK_EQ(max_visible_keys(kMistral7b, 32768), 4096);
  CHECK_EQ(decode_num_splits(max_visible_keys(kMistral7b, 32768)), 8);
  CHECK_EQ(decode_num_splits(max_visible_keys(kLlama7b, 0)), 8);
  CHECK_EQ(decode_num_splits(max_visible_keys(kLlama7b, 1000)), 2);
}

TEST(logits_rows_are_one_per_sequence) {
  const StepBuffers b = step_buffers(kLlama7b, 2, StepPlan{});  // 256 sequences, 2048 tokens
  CHECK_EQ(b.logits, 256 * (4096 * 2 + 32000 * 4));              // 35 MB, not 2048 rows' 262 MB
  CHECK_EQ(b.workspace, 4LL * 256 * 32 * 8 * (128 + 2));
  CHECK_EQ(b.activations, 2048 * (4LL * (2 * 4096 + 3 * 4096 + 2 * 11008) + 2 * (4096 + 2 * 4096 + 11008)));
  // Fewer tokens than sequences: a step holds at most one sequence per token.
  CHECK_EQ(step_buffers(kLlama7b, 2, StepPlan{256, 64, 0}).logits, 64 * logits_bytes_per_row(kLlama7b, 2));
}

// The A10G plan: weights, the largest step and a CUDA context (~0.5 GiB) leave a pool that,
// with everything else, stays inside 0.9 x 23,028 MiB; the largest step the scheduler can form
// (max_num_seqs decodes at the longest visible context, or a full token budget) fits the
// buffers reserved for it.
TEST(a10g_plan_fits_the_budget) {
  const int64_t context = 512LL << 20;
  for (const ModelConfig* c : {&kLlama7b, &kMistral7b}) {
    const StepPlan plan;
    const StepBuffers step = step_buffers(*c, 2, plan);
    const int64_t weights = gpu_weight_bytes(*c, false), per_block = kv_bytes_per_block(*c, 16);
    const int64_t used = weights + step.total() + context;
    const int64_t blocks = kv_blocks_that_fit(kA10gTotalBytes, used, per_block, GpuMemoryOptions{});
    std::printf("  %s: weights %.2f GiB, step %.1f MiB (activations %.1f, logits %.1f, workspace %.1f), "
                "KV %lld blocks = %lld tokens\n", c->sliding_window ? "mistral-7b" : "llama-2-7b",
                weights / 1073741824.0, step.total() / 1048576.0, step.activations / 1048576.0, step.logits / 1048576.0,
                step.workspace / 1048576.0, static_cast<long long>(blocks), static_cast<long long>(blocks * 16));
    CHECK(blocks * 16 >= 4096);  // at least one full context
    CHECK(used + blocks * per_block + kGpuMarginBytes <= kA10gBudgetBytes);
    CHECK(used + (blocks + 1) * per_block + kGpuMarginBytes > kA10gBudgetBytes);  // and no less than fits
    const int longest = max_visible_keys(*c, c->max_position_embeddings);
    CHECK(decode_workspace_bytes(*c, plan.max_num_seqs, decode_num_splits(longest)) <= step.workspace);
    CHECK(activation_bytes_per_token(*c, 2) * plan.max_num_batched_tokens <= step.activations);
  }
}

TEST(shape_table_has_the_published_configs) {
  CHECK_EQ(shape_names().size(), size_t(5));
  const ModelConfig c = shape_config("llama-2-13b");
  CHECK_EQ(c.hidden_size, 5120);
  CHECK_EQ(c.intermediate_size, 13824);
  CHECK_EQ(c.num_kv_heads, 40);
  CHECK_EQ(c.head_dim, 128);
  CHECK_EQ(kMistral7b.architecture, std::string("MistralForCausalLM"));
  CHECK_EQ(kMistral7b.sliding_window, 4096);
  CHECK(shape_config("tiny").tie_word_embeddings);
  CHECK_THROWS_WITH(shape_config("llama-3-8b"), "unknown shape 'llama-3-8b' (known: tiny, 100m, llama-2-7b");
}

// The weights as the CUDA backend lays them out: every group 256-byte aligned, norms float32,
// int8 linear weights 1 byte + a float32 scale per row.
TEST(gpu_weight_bytes_follow_the_upload_layout) {
  const ModelConfig tiny = shape_config("tiny");  // tied: no LM head of its own
  const auto a = [](int64_t n) { return (n + 255) / 256 * 256; };
  const int64_t norms = 5 * a(64 * 4);
  CHECK_EQ(gpu_weight_bytes(tiny, false), a(32000 * 64 * 2) + norms +
                                              2 * (a(128 * 64 * 2) + a(64 * 64 * 2) + a(352 * 64 * 2) + a(64 * 176 * 2)));
  CHECK_EQ(gpu_weight_bytes(tiny, true), a(32000 * 64 * 2) + norms +
                                             2 * (a(128 * 64) + a(128 * 4) + a(64 * 64) + a(64 * 4) + a(352 * 64) +
                                                  a(352 * 4) + a(64 * 176) + a(64 * 4)));
  CHECK_EQ(gpu_weight_bytes(tiny, true, true) - gpu_weight_bytes(tiny, true), a(32000 * 64) + a(32000 * 4));
  const int64_t w = gpu_weight_bytes(kLlama7b, false), hand = f16_weight_bytes(kLlama7b);
  CHECK(w >= hand && w - hand < 256 * (9 * 32 + 3));
  // 13B int8 (linear 1 byte + scales, the rest fp16): ~13.35 GB, the size of `gyre quantize`'s files.
  const int64_t q13 = gpu_weight_bytes(shape_config("llama-2-13b"), true);
  CHECK(q13 > 13'352'000'000LL && q13 < 13'354'000'000LL);
}

// plan_gpu_memory is the backend's arithmetic: budget - weights - step - context - margin, in whole blocks.
TEST(plan_is_the_budget_arithmetic) {
  for (const ModelConfig* c : {&kLlama7b, &kMistral7b}) {
    const GpuPlan p = plan_gpu_memory(*c);
    const int64_t used = p.weights + p.step.total() + kCudaContextBytes;
    CHECK_EQ(p.step.total(), step_buffers(*c, 2, StepPlan{}).total());
    CHECK_EQ(p.kv_blocks, kv_blocks_that_fit(kA10gTotalBytes, used, kv_bytes_per_block(*c, 16), GpuMemoryOptions{}));
    CHECK_EQ(p.kv_tokens, p.kv_blocks * 16);
    CHECK_EQ(p.kv_bytes, kA10gBudgetBytes - used - kGpuMarginBytes);
  }
  // Llama-2-13B in fp16 does not fit; in int8 it does.
  GpuPlanOptions o;
  CHECK_EQ(plan_gpu_memory(shape_config("llama-2-13b"), o).kv_tokens, 0);
  CHECK(plan_gpu_memory(shape_config("llama-2-13b"), o).kv_bytes < 0);
  o.int8 = true;
  CHECK(plan_gpu_memory(shape_config("llama-2-13b"), o).kv_tokens >= 4096);
  o.memory.fraction = 2;
  CHECK_THROWS_WITH(plan_gpu_memory(kLlama7b, o), "GYRE_GPU_MEMORY_FRACTION");
}

// The Python peer reads the table from this file.
TEST(committed_shapes_json_is_the_table) {
  std::ifstream f(GYRE_FIXTURES "/../../native/scripts/shapes.json");
  std::stringstream text;
  text << f.rdbuf();
  CHECK_MSG(text.str() == shapes_json(),
            "native/scripts/shapes.json is not gyre/shapes.h's table: regenerate it (gyre_shapes > native/scripts/shapes.json)");
}

TEST(parse_bytes_reads_sizes) {
  CHECK_EQ(parse_bytes("24G"), 24LL << 30);
  CHECK_EQ(parse_bytes("20.5GiB"), 41LL << 29);
  CHECK_EQ(parse_bytes("512m"), 512LL << 20);
  CHECK_EQ(parse_bytes("1000"), 1000);
  CHECK_EQ(parse_bytes("lots"), -1);
}

GYRE_TEST_MAIN
