// Weight-only INT8: the quantizer, the CPU int8 kernel, loading int8 files, and the accuracy of
// int8 against the float32 path on every reference fixture with peaked logits.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <functional>
#include <unistd.h>

#include "check.h"
#include "cpu/gemm.h"
#include "common/simd.h"
#include "gyre/backend.h"
#include "gyre/weights.h"
#include "int8_metrics.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

constexpr int kBlock = 16;
constexpr int kMaxBlocks = 16;  // 256 tokens

std::string tmp_dir(const std::string& tag) {
  static int n = 0;
  std::string d = "/tmp/gyre_quant_test_" + std::to_string(::getpid()) + "_" + tag + "_" + std::to_string(n++);
  ::mkdir(d.c_str(), 0755);
  return d;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// config.json with a quantization_config added (the last '}' of the object replaced).
std::string with_quant_config(std::string config) {
  const size_t end = config.rfind('}');
  return config.substr(0, end) +
         ",\n  \"quantization_config\": {\"quant_method\": \"gyre_int8\", \"bits\": 8, \"lm_head\": false}\n}\n";
}

bool is_layer_linear(const std::string& name) {
  return name.find("_proj.weight") != std::string::npos && name.rfind("model.layers.", 0) == 0;
}

// A float32 copy of fixture `name` with the layers' linear weights times `linear_scale` and the
// final norm times `norm_scale`: the fixtures' N(0, 0.02) weights give near-uniform logits
// (max |logit| < 1 over a 320-token vocabulary), where top-1 and perplexity say little.
std::string peaked_copy(const std::string& name, float linear_scale, float norm_scale) {
  SafetensorsFile src(fixture_dir(name) + "/model.safetensors");
  std::vector<std::vector<float>> bufs;
  std::vector<NamedTensor> out;
  for (const std::string& n : src.names()) {
    const TensorView& t = src.get(n);
    bufs.emplace_back(t.as<float>(), t.as<float>() + t.numel());
    const float s = is_layer_linear(n) ? linear_scale : n == "model.norm.weight" ? norm_scale : 1.0f;
    for (float& v : bufs.back()) v *= s;
  }
  size_t i = 0;
  for (const std::string& n : src.names()) {
    const TensorView& t = src.get(n);
    out.push_back(NamedTensor{n, DType::kF32, t.shape, bufs[i++].data()});
  }
  std::string dir = tmp_dir(name);
  write_safetensors(dir + "/model.safetensors", out);
  write_text(dir + "/config.json", read_text(fixture_dir(name) + "/config.json"));
  return dir;
}

// Writes `w` (int8-quantized at load) as a gyre_int8 folder, the layout `gyre quantize` writes.
std::string write_int8_folder(const std::string& float_dir, const ModelWeights& w) {
  SafetensorsFile src(float_dir + "/model.safetensors");
  std::vector<NamedTensor> out;
  for (const std::string& n : src.names())
    if (!is_layer_linear(n)) out.push_back(NamedTensor{n, src.get(n).dtype, src.get(n).shape, src.get(n).data});
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::pair<const char*, std::pair<const TensorView*, const TensorView*>> lin[] = {
        {"self_attn.q_proj", {&L.wq, &L.wq_scale}}, {"self_attn.k_proj", {&L.wk, &L.wk_scale}},
        {"self_attn.v_proj", {&L.wv, &L.wv_scale}}, {"self_attn.o_proj", {&L.wo, &L.wo_scale}},
        {"mlp.gate_proj", {&L.w_gate, &L.w_gate_scale}}, {"mlp.up_proj", {&L.w_up, &L.w_up_scale}},
        {"mlp.down_proj", {&L.w_down, &L.w_down_scale}}};
    for (const auto& [n, ts] : lin) {
      out.push_back(NamedTensor{p + n + ".weight", DType::kI8, ts.first->shape, ts.first->data});
      out.push_back(NamedTensor{p + n + ".weight_scale", DType::kF32, ts.second->shape, ts.second->data});
    }
  }
  std::string dir = tmp_dir("int8");
  write_safetensors(dir + "/model.safetensors", out);
  write_text(dir + "/config.json", with_quant_config(read_text(float_dir + "/config.json")));
  return dir;
}

std::unique_ptr<Backend> backend(std::shared_ptr<ModelWeights> w) {
  return one_sequence_backend("cpu", std::move(w), 2, kBlock, kMaxBlocks);
}

std::vector<float> all_logits(Backend& be, const std::vector<int32_t>& ids) {
  return gyre_test::all_logits(be, ids, kBlock, kMaxBlocks);
}

std::vector<int32_t> sample_sequence(Backend& be, int len, uint32_t seed) {
  return gyre_test::sample_sequence(be, len, seed, kBlock, kMaxBlocks);
}

Int8Metrics compare(Backend& f32, Backend& i8, const std::vector<int32_t>& seq) {
  auto a = all_logits(f32, seq), b = all_logits(i8, seq);
  return int8_metrics(a.data(), b.data(), seq, f32.config().vocab_size);
}

// The peaked copies: linear weights x2 (std 0.04, about 1/sqrt(hidden) for these 64-wide
// models, as in a trained model's layers), final norm x40: the float32 model then puts 0.5-0.76
// of its mass on its top token on average and has a perplexity of 2-5 on its own samples.
constexpr float kLinearScale = 2.0f, kNormScale = 40.0f;

LoadOptions int8_options(bool lm_head = false) {
  LoadOptions o;
  o.quantization = Quantization::kInt8;
  o.quantize_lm_head = lm_head;
  return o;
}

}  // namespace

TEST(quantizer_rounds_half_to_even_per_row) {
  // Row 0: absmax 1.27 -> scale 0.01; row 1: all zero; row 2: halves exactly between steps.
  const int cols = 11;  // an AVX2 block of 8 and a scalar tail of 3
  std::vector<float> w = {1.27f, -1.27f, 0.005f, 0.015f, 0.0f, 0.5f, -0.635f, 0.0049f, 1.0f, -0.025f, 0.635f};
  w.resize(3 * cols, 0.0f);
  const float s2 = 2.0f;  // row 2: absmax 127 * 2 -> scale exactly 2
  for (int k = 0; k < cols; ++k) w[2 * cols + k] = k % 2 ? (2 * k + 1) * 1.0f : -(2 * k + 1) * 1.0f;  // odd integers
  w[2 * cols + 10] = 127 * s2;
  TensorView t{DType::kF32, {3, cols}, w.data(), w.size() * 4};
  std::vector<int8_t> q(3 * cols);
  std::vector<float> scale(3);
  quantize_int8_rows(t, q.data(), scale.data());
  CHECK(scale[0] == 1.27f / 127.0f);
  CHECK(scale[1] == 0.0f && scale[2] == 2.0f);
  for (int k = 0; k < cols; ++k) {
    const int8_t ref0 = static_cast<int8_t>(std::nearbyint(w[k] / scale[0]));
    CHECK_MSG(q[k] == ref0, "row 0 col " << k << ": " << int(q[k]) << " vs " << int(ref0));
    CHECK(q[cols + k] == 0);
  }
  CHECK(q[0] == 127 && q[1] == -127);
  // (2k+1) / 2 = k + 0.5 rounds to the even neighbour, in the vector block and the tail alike.
  for (int k = 0; k < 10; ++k) {
    const int mag = (k % 2 == 0 ? k : k + 1);  // even of {k, k+1}
    const int expect = k % 2 ? mag : -mag;
    CHECK_MSG(q[2 * cols + k] == expect, "row 2 col " << k << ": " << int(q[2 * cols + k]) << " vs " << expect);
  }
  CHECK(q[2 * cols + 10] == 127);
}

TEST(quantizer_refuses_nonfinite_and_non_float) {
  std::vector<float> w = {1.0f, NAN, 0.0f, 1.0f};
  TensorView t{DType::kF32, {2, 2}, w.data(), 16};
  std::vector<int8_t> q(4);
  std::vector<float> s(2);
  CHECK_THROWS_WITH(quantize_int8_rows(t, q.data(), s.data()), "row 0 holds a non-finite value");
  TensorView i{DType::kI32, {2, 2}, w.data(), 16};
  CHECK_THROWS_WITH(quantize_int8_rows(i, q.data(), s.data()), "dtype I32 is not F32, F16 or BF16");
}

TEST(quantizer_same_from_f16_and_bf16_as_from_their_float_values) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 0.02f);
  const int rows = 5, cols = 37;
  std::vector<uint16_t> h(rows * cols), b(rows * cols);
  std::vector<float> hf(rows * cols), bf(rows * cols);
  for (int i = 0; i < rows * cols; ++i) {
    const float v = nd(rng);
    h[i] = _cvtss_sh(v, 0);
    hf[i] = half_to_float(h[i]);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    b[i] = static_cast<uint16_t>(u >> 16);
    bf[i] = bf16_to_float(b[i]);
  }
  auto run = [&](DType dt, const void* p) {
    TensorView t{dt, {rows, cols}, p, size_t(rows * cols) * dtype_size(dt)};
    std::pair<std::vector<int8_t>, std::vector<float>> r{std::vector<int8_t>(rows * cols), std::vector<float>(rows)};
    quantize_int8_rows(t, r.first.data(), r.second.data());
    return r;
  };
  CHECK(run(DType::kF16, h.data()) == run(DType::kF32, hf.data()));
  CHECK(run(DType::kBF16, b.data()) == run(DType::kF32, bf.data()));
}

TEST(int8_linear_matches_double_reference_and_is_batch_invariant) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  const int O = 53, K = 40, T = 13;  // a partial last panel
  std::vector<int8_t> q(O * K);
  std::vector<float> scale(O), x(T * K);
  for (auto& v : q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  for (auto& v : scale) v = 0.001f + 0.01f * std::fabs(nd(rng));
  for (auto& v : x) v = nd(rng);
  TensorView wq{DType::kI8, {O, K}, q.data(), q.size()}, ws{DType::kF32, {O}, scale.data(), scale.size() * 4};
  PackedLinear lin({&wq}, {&ws});
  std::vector<float> y(T * O), y1(O);
  lin.run(x.data(), T, K, y.data(), O, 0, lin.num_panels());
  for (int t = 0; t < T; ++t) {
    for (int o = 0; o < O; ++o) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(x[t * K + k]) * q[o * K + k];
      ref *= scale[o];
      // float32 accumulation of 40 products of size <= 127 * 4: error well under 1e-4 relative.
      CHECK_MSG(std::fabs(y[t * O + o] - ref) <= 1e-4 * (std::fabs(ref) + 1), "t " << t << " o " << o);
    }
    lin.run(x.data() + t * K, 1, K, y1.data(), O, 0, lin.num_panels());
    CHECK_MSG(std::memcmp(y1.data(), y.data() + t * O, O * 4) == 0, "row " << t << " alone differs from the batch");
  }
  // Split stacking (like q, k, v) gives the same bits as one matrix.
  TensorView a{DType::kI8, {20, K}, q.data(), size_t(20 * K)}, sa{DType::kF32, {20}, scale.data(), 80};
  TensorView b{DType::kI8, {O - 20, K}, q.data() + 20 * K, size_t((O - 20) * K)};
  TensorView sb{DType::kF32, {O - 20}, scale.data() + 20, size_t((O - 20) * 4)};
  PackedLinear split({&a, &b}, {&sa, &sb});
  std::vector<float> y2(T * O);
  split.run(x.data(), T, K, y2.data(), O, 0, split.num_panels());
  CHECK(std::memcmp(y2.data(), y.data(), y.size() * 4) == 0);
}

TEST(int8_accuracy_on_every_fixture_with_peaked_logits) {
  std::printf("  bounds: rel err max %.3f mean %.3f, top-1 >= %.2f and no clear flips, |ppl change| <= %.1f%%\n", kMaxRelErr, kMeanRelErr,
              kMinTop1, 100 * kMaxPplChange);
  for (const auto& name : fixture_models()) {
    const std::string dir = peaked_copy(name, kLinearScale, kNormScale);
    std::shared_ptr<ModelWeights> wf = load_model(dir), w8 = load_model(dir, int8_options());
    CHECK(wf->quantization == Quantization::kNone && w8->quantization == Quantization::kInt8);
    CHECK(w8->layers[0].wq.dtype == DType::kI8 && w8->lm_head.dtype == DType::kF32);
    CHECK(w8->linear_weight_bytes() * 4 < wf->linear_weight_bytes() * 1.1);  // 1 byte + a scale per row vs 4
    auto bf = backend(wf), b8 = backend(w8);
    auto seq = sample_sequence(*bf, 200, 11);
    Int8Metrics m = compare(*bf, *b8, seq);
    print_metrics(name, m);
    CHECK_MSG(m.mean_top_prob > 0.3, name << ": logits not peaked (mean top prob " << m.mean_top_prob << ")");
    CHECK_MSG(m.max_rel_err <= kMaxRelErr, name << ": max relative error " << m.max_rel_err);
    CHECK_MSG(m.mean_rel_err <= kMeanRelErr, name << ": mean relative error " << m.mean_rel_err);
    CHECK_MSG(m.top1_agreement >= kMinTop1, name << ": top-1 agreement " << m.top1_agreement);
    CHECK_MSG(m.clear_flips == 0, name << ": " << m.clear_flips << " top-1 flips at clear margins");
    CHECK_MSG(m.ppl_change <= kMaxPplChange, name << ": perplexity change " << m.ppl_change);
    CHECK_MSG(m.max_rel_err > 0, name << ": int8 logits equal float32 ones: the weights were not quantized");

    // With the LM head quantized too: still within the bounds.
    auto b8h = backend(std::shared_ptr<ModelWeights>(load_model(dir, int8_options(true))));
    Int8Metrics mh = compare(*bf, *b8h, seq);
    print_metrics(name + " +lm_head", mh);
    CHECK_MSG(within_bounds(mh), name << ": int8 with the LM head quantized is out of bounds");
  }
}

TEST(a_quantization_bug_is_caught_by_the_bounds) {
  // The bug: each row gets its neighbour's scale (an off-by-one in scale indexing).
  for (const auto& name : fixture_models()) {
    const std::string dir = peaked_copy(name, kLinearScale, kNormScale);
    std::shared_ptr<ModelWeights> wf = load_model(dir), w8 = load_model(dir, int8_options());
    for (LayerWeights& l : w8->layers) {
      for (TensorView* s : {&l.wq_scale, &l.wk_scale, &l.wv_scale, &l.wo_scale, &l.w_gate_scale, &l.w_up_scale,
                            &l.w_down_scale}) {
        std::vector<char> shifted(s->nbytes);
        const float* src = s->as<float>();
        float* dst = reinterpret_cast<float*>(shifted.data());
        const int64_t n = s->numel();
        for (int64_t i = 0; i < n; ++i) dst[i] = src[(i + 1) % n];
        w8->owned.push_back(std::move(shifted));
        s->data = w8->owned.back().data();
      }
    }
    auto bf = backend(wf), b8 = backend(w8);
    Int8Metrics m = compare(*bf, *b8, sample_sequence(*bf, 200, 11));
    print_metrics(name + " (bug)", m);
    CHECK_MSG(!within_bounds(m), name << ": the shifted-scale bug passed the bounds");
    CHECK_MSG(m.mean_rel_err > 4 * kMeanRelErr, name << ": the bug moved the mean error only to " << m.mean_rel_err);
  }
}

TEST(int8_files_load_bit_identical_to_quantize_at_load) {
  for (const auto& name : fixture_models()) {
    const std::string dir = peaked_copy(name, kLinearScale, kNormScale);
    std::shared_ptr<ModelWeights> at_load = load_model(dir, int8_options());
    const std::string int8_dir = write_int8_folder(dir, *at_load);
    std::shared_ptr<ModelWeights> from_file = load_model(int8_dir);  // no option: the files say int8
    CHECK(from_file->quantization == Quantization::kInt8 && from_file->owned.empty());
    auto a = backend(at_load), b = backend(from_file);
    auto seq = load_prompts(name).back().ids;
    auto la = all_logits(*a, seq), lb = all_logits(*b, seq);
    CHECK_MSG(std::memcmp(la.data(), lb.data(), la.size() * 4) == 0, name << ": int8 file differs from quantize-at-load");
    // Asking for int8 again changes nothing.
    auto c = backend(std::shared_ptr<ModelWeights>(load_model(int8_dir, int8_options())));
    auto lc = all_logits(*c, seq);
    CHECK(std::memcmp(la.data(), lc.data(), la.size() * 4) == 0);
  }
}

TEST(bad_int8_files_are_refused_naming_file_and_tensor) {
  const std::string dir = peaked_copy("llama-mha", 1.0f, 1.0f);
  std::shared_ptr<ModelWeights> w8 = load_model(dir, int8_options());
  const std::string good = write_int8_folder(dir, *w8);
  const std::string config = read_text(good + "/config.json");
  SafetensorsFile f(good + "/model.safetensors");
  auto rewrite = [&](const std::function<bool(NamedTensor&)>& keep, const std::string& cfg) {
    std::vector<NamedTensor> out;
    for (const std::string& n : f.names()) {
      NamedTensor t{n, f.get(n).dtype, f.get(n).shape, f.get(n).data};
      if (keep(t)) out.push_back(t);
    }
    std::string d = tmp_dir("bad");
    write_safetensors(d + "/model.safetensors", out);
    write_text(d + "/config.json", cfg);
    return d;
  };
  const std::string scale = "model.layers.1.mlp.up_proj.weight_scale";
  CHECK_THROWS_WITH(load_model(rewrite([&](NamedTensor& t) { return t.name != scale; }, config)),
                    "tensor 'model.layers.1.mlp.up_proj.weight' is I8 but its scale '" + scale + "' is missing");
  CHECK_THROWS_WITH(load_model(rewrite([&](NamedTensor& t) {
                      if (t.name == scale) t.shape = {3};
                      return true;
                    }, config)),
                    "tensor '" + scale + "' has shape [3], expected [176]");
  CHECK_THROWS_WITH(load_model(rewrite([](NamedTensor&) { return true; }, read_text(dir + "/config.json"))),
                    "the weights are I8 but quantization_config.quant_method is not gyre_int8");
  // One layer left in float: a half-quantized file.
  SafetensorsFile ff(dir + "/model.safetensors");
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight";
  CHECK_THROWS_WITH(load_model(rewrite([&](NamedTensor& t) {
                      if (t.name == q0) t.dtype = DType::kF32, t.data = ff.get(q0).data;
                      return t.name != q0 + "_scale";
                    }, config)),
                    "tensor '" + q0 + "' is F32 but 'model.layers.0.self_attn.k_proj.weight' is I8");
  // Float weights under a gyre_int8 config.
  std::string float_int8cfg = tmp_dir("cfg");
  {
    std::vector<NamedTensor> out;
    for (const std::string& n : ff.names()) out.push_back(NamedTensor{n, ff.get(n).dtype, ff.get(n).shape, ff.get(n).data});
    write_safetensors(float_int8cfg + "/model.safetensors", out);
    write_text(float_int8cfg + "/config.json", config);
  }
  CHECK_THROWS_WITH(load_model(float_int8cfg), "quantization_config says gyre_int8 but tensor");
  // Another tool's quantization is named, not misread.
  std::string gptq = config;
  gptq.replace(gptq.find("gyre_int8"), 9, "gptq");
  write_text(float_int8cfg + "/config.json", gptq);
  CHECK_THROWS_WITH(load_model(float_int8cfg), "field 'quantization_config.quant_method' 'gptq' is not supported");
}

GYRE_TEST_MAIN
