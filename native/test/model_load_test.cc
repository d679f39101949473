// Model folders: f16/bf16 storage, shards, tied embeddings, and every way a folder can be
// wrong, each refused with the file and the field or tensor named.
#include <immintrin.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "check.h"
#include "gyre/backend.h"
#include "gyre/config.h"
#include "gyre/error.h"
#include "gyre/weights.h"
#include "reference.h"

using namespace gyre;
using namespace gyre_test;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string temp_dir() {
  char tmpl[] = "/tmp/gyre-model-XXXXXX";
  return std::string(mkdtemp(tmpl));
}

uint16_t to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
float from_f16(uint16_t h) { return _cvtsh_ss(h); }
float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The float32 tensors of a fixture model, by name.
std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> fixture_tensors(const std::string& name) {
  SafetensorsFile f(fixture_dir(name) + "/model.safetensors");
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> out;
  for (const auto& n : f.names()) {
    const auto& t = f.get(n);
    out[n] = {t.shape, std::vector<float>(t.as<float>(), t.as<float>() + t.numel())};
  }
  return out;
}

// Writes a model folder: config.json (optionally edited) and the tensors in `dtype`, split
// into `shards` files (with an index) when shards > 1.
std::string write_model(const std::string& name, DType dtype, int shards = 1,
                        const std::string& config_edit_from = "", const std::string& config_edit_to = "",
                        const std::string& drop = "") {
  std::string dir = temp_dir();
  std::string cfg = read_text(fixture_dir(name) + "/config.json");
  if (!config_edit_from.empty()) cfg.replace(cfg.find(config_edit_from), config_edit_from.size(), config_edit_to);
  write_text(dir + "/config.json", cfg);
  auto tensors = fixture_tensors(name);
  std::vector<std::vector<uint16_t>> halves;
  std::vector<std::vector<NamedTensor>> files(shards);
  size_t i = 0;
  for (auto& [n, t] : tensors) {
    if (n == drop) continue;
    NamedTensor nt{n, dtype, t.first, t.second.data()};
    if (dtype != DType::kF32) {
      halves.emplace_back(t.second.size());
      for (size_t j = 0; j < t.second.size(); ++j)
        halves.back()[j] = dtype == DType::kF16 ? to_f16(t.second[j]) : to_bf16(t.second[j]);
      nt.data = halves.back().data();
    }
    files[i++ % shards].push_back(nt);
  }
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", files[0]);
  } else {
    std::string index = "{\"metadata\": {}, \"weight_map\": {";
    bool first = true;
    for (int s = 0; s < shards; ++s) {
      std::string file = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
      write_safetensors(dir + "/" + file, files[s]);
      for (const auto& nt : files[s]) {
        index += std::string(first ? "" : ", ") + "\"" + nt.name + "\": \"" + file + "\"";
        first = false;
      }
    }
    write_text(dir + "/model.safetensors.index.json", index + "}}");
  }
  return dir;
}

std::vector<float> all_logits(const std::string& dir, const std::vector<int32_t>& ids) {
  std::shared_ptr<ModelWeights> w = load_model(dir);
  auto be = make_backend("cpu", w, 2);
  KvCacheSpec spec;
  spec.num_blocks = 16;
  be->allocate_kv_cache(spec);
  Batch b;
  b.clear();
  add_chunk(b, ids, 0, static_cast<int>(ids.size()), 0, 16, 16, true);
  std::vector<float> out(ids.size() * be->config().vocab_size);
  be->forward(b, out.data());
  return out;
}

// The fixture with every weight rounded through `dtype` but stored as float32.
std::string write_rounded_f32(const std::string& name, DType dtype) {
  std::string dir = temp_dir();
  write_text(dir + "/config.json", read_text(fixture_dir(name) + "/config.json"));
  auto tensors = fixture_tensors(name);
  std::vector<NamedTensor> list;
  for (auto& [n, t] : tensors) {
    for (float& x : t.second) x = dtype == DType::kF16 ? from_f16(to_f16(x)) : from_bf16(to_bf16(x));
    list.push_back({n, DType::kF32, t.first, t.second.data()});
  }
  write_safetensors(dir + "/model.safetensors", list);
  return dir;
}

// A safetensors file with this header JSON and `data_bytes` zero bytes of data.
void write_raw_safetensors(const std::string& path, std::string header, size_t data_bytes) {
  while (header.size() % 8) header += ' ';
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  write_text(path, bytes + header + std::string(data_bytes, '\0'));
}

// What load_model says about dir ("" when it loads).
std::string load_error(const std::string& dir) {
  try {
    load_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// A model folder is untrusted input: only regular files inside it are opened, every count and
// size is bounded before use, and no message quotes a file's bytes.
TEST(hostile_folders_are_refused_without_opening_outside_files) {
  const std::string m = "llama-mha";
  // A shard index entry that leaves the folder: refused before anything is opened.
  std::string dir = write_model(m, DType::kF32, 2);
  std::string index = read_text(dir + "/model.safetensors.index.json");
  index.replace(index.find("model-00002-of-00002.safetensors"), 32, "../../../../../../../../etc/passwd");
  write_text(dir + "/model.safetensors.index.json", index);
  std::string e = load_error(dir);
  CHECK_MSG(e.find("must be a file name in the model folder") != std::string::npos, e);
  CHECK_MSG(e.find("root") == std::string::npos && e.find("header length") == std::string::npos, e);

  // A FIFO as a shard: refused at once (opening it for reading would block for ever).
  dir = write_model(m, DType::kF32, 2);
  CHECK(unlink((dir + "/model-00002-of-00002.safetensors").c_str()) == 0);
  CHECK(mkfifo((dir + "/model-00002-of-00002.safetensors").c_str(), 0600) == 0);
  e = load_error(dir);
  CHECK_MSG(e.find("model-00002-of-00002.safetensors: not a regular file") != std::string::npos, e);

  // config.json and a shard as symlinks to a file outside the folder.
  dir = write_model(m, DType::kF32);
  CHECK(unlink((dir + "/config.json").c_str()) == 0);
  CHECK(symlink("/etc/passwd", (dir + "/config.json").c_str()) == 0);
  e = load_error(dir);
  CHECK_MSG(e.find("config.json: a symlink that leads outside the model folder") != std::string::npos, e);
  CHECK_MSG(e.find("root") == std::string::npos, e);
  dir = write_model(m, DType::kF32);
  CHECK(unlink((dir + "/model.safetensors").c_str()) == 0);
  CHECK(symlink("/etc/passwd", (dir + "/model.safetensors").c_str()) == 0);
  e = load_error(dir);
  CHECK_MSG(e.find("model.safetensors: a symlink that leads outside the model folder") != std::string::npos, e);
  // A symlink inside the folder is fine.
  dir = write_model(m, DType::kF32);
  CHECK(rename((dir + "/model.safetensors").c_str(), (dir + "/weights.bin").c_str()) == 0);
  CHECK(symlink("weights.bin", (dir + "/model.safetensors").c_str()) == 0);
  CHECK_EQ(load_error(dir), std::string());

  // Not safetensors at all: the first 8 bytes are never quoted as a number.
  dir = write_model(m, DType::kF32);
  write_text(dir + "/model.safetensors", "root:x:0:0:root:/root:/bin/bash\n");
  e = load_error(dir);
  CHECK_MSG(e.find("the header length in its first 8 bytes exceeds") != std::string::npos, e);
  CHECK_MSG(e.find("3475222254926655500") == std::string::npos && e.find("root:") == std::string::npos, e);
}

TEST(sizes_are_bounded_before_use) {
  const std::string m = "llama-mha";
  // A shape whose byte size wraps to 0 in 64 bits.
  std::string dir = write_model(m, DType::kF32);
  write_raw_safetensors(dir + "/model.safetensors",
                        R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0);
  std::string e = load_error(dir);
  CHECK_MSG(e.find("tensor 'model.embed_tokens.weight': shape") != std::string::npos, e);
  // Negative and float offsets, float shapes, too many dimensions.
  for (const char* bad : {R"("shape":[2],"data_offsets":[-8,0])", R"("shape":[2],"data_offsets":[0.0,8])",
                          R"("shape":[2.0],"data_offsets":[0,8])", R"("shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8])"}) {
    write_raw_safetensors(dir + "/model.safetensors", std::string(R"({"model.norm.weight":{"dtype":"F32",)") + bad + "}}", 8);
    e = load_error(dir);
    CHECK_MSG(e.find("tensor 'model.norm.weight': ") != std::string::npos && e.find("is missing") == std::string::npos,
              bad << " -> " << e);
  }
  // A header entry without its fields.
  write_raw_safetensors(dir + "/model.safetensors", R"({"model.norm.weight":{"dtype":"F32"}})", 0);
  CHECK_THROWS_WITH(load_model(dir), "header entry needs dtype, shape and data_offsets");

  // config.json counts.
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000000")),
                    "field 'num_hidden_layers' is out of range: 1000000 (1 to 1024)");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"vocab_size\": 320", "\"vocab_size\": 99999999999999999999")),
                    "field 'vocab_size' is out of range");

  // An index of 100,000 entries is refused before any shard is opened.
  dir = write_model(m, DType::kF32, 2);
  std::string index = "{\"weight_map\": {";
  for (int i = 0; i < 100000; ++i) index += (i ? ",\"t" : "\"t") + std::to_string(i) + "\": \"s" + std::to_string(i) + ".safetensors\"";
  write_text(dir + "/model.safetensors.index.json", index + "}}");
  CHECK_THROWS_WITH(load_model(dir), "field 'weight_map' has 100000 entries (at most 65536)");
}

TEST(half_storage_computes_in_f32) {
  // Storage in f16/bf16 must give exactly the logits of f32 storage of the same rounded values
  // (the kernels convert on the fly and accumulate in f32), and stay near the f32 reference:
  // rounding every weight (relative error 2^-11 for f16, 2^-8 for bf16) moves these logits
  // (|logit| < 1) by up to 6.7e-4 (f16) and 7.1e-3 (bf16) as measured on these fixtures; the
  // bounds leave 3x room and still catch a wrong conversion (which moves logits by > 0.1).
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (const auto& name : fixture_models()) {
      auto prompts = load_prompts(name);
      const auto& p = prompts[2];
      auto half = all_logits(write_model(name, dt), p.ids);
      auto rounded = all_logits(write_rounded_f32(name, dt), p.ids);
      CHECK_MSG(std::memcmp(half.data(), rounded.data(), half.size() * 4) == 0, name << " " << dtype_name(dt));
      double diff = max_abs_diff(half.data(), p.logits.data(), half.size());
      std::printf("  %s %s: max |ours - HF f32| = %.3g\n", name.c_str(), dtype_name(dt), diff);
      CHECK_MSG(diff < (dt == DType::kF16 ? 2e-3 : 2e-2), name << " " << dtype_name(dt) << " diff " << diff);
    }
  }
}

TEST(sharded_equals_single_and_ignores_other_files) {
  auto p = load_prompts("llama-gqa-theta")[2];
  std::string dir = write_model("llama-gqa-theta", DType::kF32, 3);
  write_text(dir + "/junk.safetensors", "not a safetensors file");  // never opened
  auto sharded = all_logits(dir, p.ids);
  auto single = all_logits(fixture_dir("llama-gqa-theta"), p.ids);
  CHECK(std::memcmp(sharded.data(), single.data(), single.size() * 4) == 0);
}

TEST(tied_embeddings_use_the_embedding_as_head) {
  std::string dir = write_model("llama-mha", DType::kF32, 1, "\"tie_word_embeddings\": false",
                                "\"tie_word_embeddings\": true", "lm_head.weight");
  auto w = load_model(dir);
  CHECK(w->lm_head.data == w->embed.data);
}

TEST(bad_folders_are_refused_with_file_and_field) {
  const std::string m = "llama-mha";
  CHECK_THROWS_WITH(load_model("/nonexistent/model"), "config.json: cannot open");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "LlamaForCausalLM", "GPT2LMHeadModel")),
                    "config.json: field 'architectures' 'GPT2LMHeadModel' is not supported");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"hidden_size\": 64", "\"hidden_size\": \"64\"")),
                    "field 'hidden_size' must be an integer");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"hidden_size\": 64,", "")),
                    "field 'hidden_size' is missing");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3")),
                    "field 'num_key_value_heads' 3 does not divide num_attention_heads 4");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"rope_scaling\": null",
                                           "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2}")),
                    "field 'rope_scaling.type' 'yarn' is not supported");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "\"vocab_size\": 320", "\"vocab_size\": 321")),
                    "tensor 'model.embed_tokens.weight' has shape [320, 64], expected [321, 64] from config.json");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "", "", "model.layers.1.mlp.up_proj.weight")),
                    "model.safetensors: tensor 'model.layers.1.mlp.up_proj.weight' is missing");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "", "", "lm_head.weight")),
                    "'lm_head.weight' is missing and config.json has tie_word_embeddings false");
  CHECK_THROWS_WITH(load_model(write_model(m, DType::kF32, 1, "{", "{ broken")), "config.json: invalid JSON at offset");

  // A tensor of a dtype we cannot read.
  std::string dir = write_model(m, DType::kF32);
  {
    std::string bytes = read_text(dir + "/model.safetensors");
    size_t at = bytes.find("\"model.norm.weight\":{\"dtype\":\"F32\"");
    CHECK(at != std::string::npos);
    bytes.replace(bytes.find("F32", at), 3, "F64");
    // F64 of half as many elements keeps the byte count; the shape check comes after the dtype.
    write_text(dir + "/model.safetensors", bytes);
  }
  CHECK_THROWS_WITH(load_model(dir), "tensor 'model.norm.weight' has dtype F64, which is not supported");

  // A truncated file.
  dir = write_model(m, DType::kF32);
  {
    std::string bytes = read_text(dir + "/model.safetensors");
    write_text(dir + "/model.safetensors", bytes.substr(0, bytes.size() - 100));
  }
  CHECK_THROWS_WITH(load_model(dir), "model.safetensors: truncated: tensor");
  write_text(dir + "/model.safetensors", "abc");
  CHECK_THROWS_WITH(load_model(dir), "model.safetensors: truncated: 3 bytes");

  // No weights at all; a missing shard.
  dir = temp_dir();
  write_text(dir + "/config.json", read_text(fixture_dir(m) + "/config.json"));
  CHECK_THROWS_WITH(load_model(dir), "no model.safetensors or model.safetensors.index.json");
  dir = write_model(m, DType::kF32, 2);
  CHECK(unlink((dir + "/model-00002-of-00002.safetensors").c_str()) == 0);
  CHECK_THROWS_WITH(load_model(dir), "model.safetensors.index.json: shard 'model-00002-of-00002.safetensors'");
}

TEST(config_fields) {
  auto c = parse_config(
      R"({"architectures":["MistralForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
          "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":32000,
          "rope_theta":1000000.0,"sliding_window":4096,"eos_token_id":[2,7],"rms_norm_eps":1e-5,
          "rope_scaling":{"type":"linear","factor":2.0}})",
      "config.json");
  CHECK_EQ(c.head_dim, 128);
  CHECK_EQ(c.num_kv_heads, 8);
  CHECK_EQ(c.sliding_window, 4096);
  CHECK(c.rope_scaling == RopeScaling::kLinear);
  CHECK_EQ(c.rope_scaling_factor, 2.0);
  CHECK_THROWS_WITH(parse_config(R"({"architectures":["MistralForCausalLM"],"hidden_size":64,"intermediate_size":1,
      "num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"eos_token_id":[2,32000]})", "c.json"),
                    "c.json: field 'eos_token_id' 32000 is outside the vocabulary");
}

GYRE_TEST_MAIN
