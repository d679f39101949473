#include "convert.h"

#include <cmath>
#include <string>

#include "gyre/config.h"
#include "gyre/shapes.h"

namespace gyre_node {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Reads obj[key] as a number; false when absent (undefined or null).
bool get_number(const Napi::Object& obj, const char* scope, const char* key, double* out) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsNumber()) {
    throw Napi::TypeError::New(obj.Env(), std::string(scope) + "." + key + " must be a number");
  }
  *out = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(*out)) {
    throw Napi::TypeError::New(obj.Env(), std::string(scope) + "." + key + " must not be NaN");
  }
  return true;
}

bool get_int(const Napi::Object& obj, const char* scope, const char* key, double lo, double hi,
             int64_t* out) {
  double d;
  if (!get_number(obj, scope, key, &d)) return false;
  if (d != std::floor(d) || d < lo || d > hi) {
    throw Napi::RangeError::New(obj.Env(), std::string(scope) + "." + key + " must be an integer in [" +
                                               std::to_string(int64_t(lo)) + ", " +
                                               std::to_string(int64_t(hi)) + "], got " +
                                               std::to_string(d));
  }
  *out = int64_t(d);
  return true;
}

bool get_bool(const Napi::Object& obj, const char* scope, const char* key, bool* out) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) {
    throw Napi::TypeError::New(obj.Env(), std::string(scope) + "." + key + " must be a boolean");
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

Napi::Object as_object(const Napi::Value& value, const char* what) {
  if (value.IsUndefined() || value.IsNull()) return Napi::Object::New(value.Env());
  if (!value.IsObject()) throw Napi::TypeError::New(value.Env(), std::string(what) + " must be an object");
  return value.As<Napi::Object>();
}

std::vector<int32_t> to_int32_list(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  std::vector<int32_t> out;
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto arr = value.As<Napi::Int32Array>();
    out.assign(arr.Data(), arr.Data() + arr.ElementLength());
    return out;
  }
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array of integers");
  auto arr = value.As<Napi::Array>();
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d == std::floor(d)) || d < -2147483648.0 || d > 2147483647.0) {
      throw Napi::TypeError::New(env, std::string(what) + "[" + std::to_string(i) + "] is not an integer token id");
    }
    out.push_back(int32_t(d));
  }
  return out;
}

}  // namespace

gyre::EngineOptions to_engine_options(const Napi::Value& value) {
  Napi::Object o = as_object(value, "options");
  gyre::EngineOptions opts;
  Napi::Value backend = o.Get("backend");
  if (!backend.IsUndefined() && !backend.IsNull()) {
    if (!backend.IsString()) throw Napi::TypeError::New(o.Env(), "options.backend must be a string");
    opts.backend = backend.As<Napi::String>().Utf8Value();
  }
  const double kIntMax = 2147483647.0;
  int64_t i;
  if (get_int(o, "options", "numThreads", 0, 4096, &i)) opts.num_threads = int(i);
  if (get_int(o, "options", "maxNumSeqs", 1, kIntMax, &i)) opts.max_num_seqs = int(i);
  if (get_int(o, "options", "maxNumBatchedTokens", 1, kIntMax, &i)) opts.max_num_batched_tokens = int(i);
  if (get_int(o, "options", "maxModelLen", 0, kIntMax, &i)) opts.max_model_len = int(i);
  if (get_int(o, "options", "blockSize", 1, 65536, &i)) opts.kv.block_size = int(i);
  if (get_int(o, "options", "kvCacheTokens", 0, kMaxSafeInteger, &i)) opts.kv.max_tokens = i;
  if (get_int(o, "options", "kvCacheBytes", 0, kMaxSafeInteger, &i)) opts.kv.max_bytes = i;
  get_bool(o, "options", "enablePrefixCaching", &opts.enable_prefix_caching);
  double fraction;
  if (get_number(o, "options", "gpuMemoryFraction", &fraction)) {
    if (!(fraction > 0 && fraction <= 1))
      throw Napi::RangeError::New(o.Env(), "options.gpuMemoryFraction must be a number in (0, 1], got " +
                                               std::to_string(fraction));
    opts.kv.gpu_memory.fraction = fraction;
  }
  if (get_int(o, "options", "gpuMemoryBudget", 0, kMaxSafeInteger, &i)) opts.kv.gpu_memory.budget = i;
  Napi::Value quant = o.Get("quantization");
  if (!quant.IsUndefined() && !quant.IsNull()) {
    const std::string q = quant.IsString() ? quant.As<Napi::String>().Utf8Value() : "";
    if (q == "int8") opts.load.quantization = gyre::Quantization::kInt8;
    else if (q != "none") throw Napi::TypeError::New(o.Env(), "options.quantization must be 'none' or 'int8'");
  }
  get_bool(o, "options", "quantizeLmHead", &opts.load.quantize_lm_head);
  Napi::Value eos = o.Get("eosTokenIds");
  if (!eos.IsUndefined() && !eos.IsNull()) opts.eos_token_ids = to_int32_list(eos, "options.eosTokenIds");
  return opts;
}

// The TypeScript SamplingParams (src/engine/native.ts), field for field.
gyre::SamplingParams to_sampling_params(const Napi::Value& value) {
  Napi::Object o = as_object(value, "params");
  gyre::SamplingParams p;
  double d;
  int64_t i;
  const char* s = "params";
  if (get_number(o, s, "temperature", &d)) p.temperature = float(d);
  if (get_int(o, s, "topK", 0, 2147483647.0, &i)) p.top_k = int(i);
  if (get_number(o, s, "topP", &d)) p.top_p = float(d);
  if (get_number(o, s, "minP", &d)) p.min_p = float(d);
  if (get_number(o, s, "repetitionPenalty", &d)) p.repetition_penalty = float(d);
  if (get_number(o, s, "presencePenalty", &d)) p.presence_penalty = float(d);
  if (get_number(o, s, "frequencyPenalty", &d)) p.frequency_penalty = float(d);
  if (get_int(o, s, "seed", 0, kMaxSafeInteger, &i)) p.seed = uint64_t(i);
  if (get_int(o, s, "maxTokens", 0, 2147483647.0, &i)) p.max_tokens = int(i);
  Napi::Value stop = o.Get("stopTokenIds");
  if (!stop.IsUndefined() && !stop.IsNull()) p.stop_token_ids = to_int32_list(stop, "params.stopTokenIds");
  get_bool(o, s, "ignoreEos", &p.ignore_eos);
  if (get_int(o, s, "logprobs", -1, 1024, &i)) p.logprobs = int(i);
  get_bool(o, s, "constrained", &p.constrained);
  return p;
}

std::vector<int32_t> to_prompt(const Napi::Value& value) { return to_int32_list(value, "prompt"); }

uint64_t to_id(const Napi::Value& value, const char* what) {
  double d = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < 0 || d > kMaxSafeInteger) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be an integer in [0, 2^53)");
  }
  return uint64_t(d);
}

const char* dtype_string(gyre::DType dtype) {
  switch (dtype) {
    case gyre::DType::kF32: return "f32";
    case gyre::DType::kF16: return "f16";
    case gyre::DType::kBF16: return "bf16";
    case gyre::DType::kI64: return "i64";
    case gyre::DType::kI32: return "i32";
  }
  return "unknown";
}

gyre::ModelConfig to_plan_config(const Napi::Value& value) {
  Napi::Env env = value.Env();
  Napi::Object o = as_object(value, "planGpuMemory: model");
  const Napi::Value shape = o.Get("shape"), dir = o.Get("modelDir");
  if (shape.IsString() == dir.IsString())
    throw Napi::TypeError::New(env, "planGpuMemory: give exactly one of shape (a shape name) and modelDir (a folder)");
  gyre::ModelConfig c = shape.IsString() ? gyre::shape_config(shape.As<Napi::String>().Utf8Value())
                                         : gyre::load_config(dir.As<Napi::String>().Utf8Value());
  int64_t i;
  if (get_int(o, "planGpuMemory", "layers", 1, gyre::kMaxLayers, &i)) c.num_layers = int(i);
  return c;
}

gyre::GpuPlanOptions to_gpu_plan_options(const Napi::Value& value) {
  Napi::Object o = as_object(value, "planGpuMemory: options");
  gyre::GpuPlanOptions p;
  int64_t i;
  double d;
  const char* s = "planGpuMemory";
  const double kIntMax = 2147483647.0;
  if (get_int(o, s, "totalBytes", 1, kMaxSafeInteger, &i)) p.total = i;
  if (get_number(o, s, "gpuMemoryFraction", &d)) p.memory.fraction = d;  // range: memory_budget() names it
  if (get_int(o, s, "gpuMemoryBudget", 0, kMaxSafeInteger, &i)) p.memory.budget = i;
  if (get_int(o, s, "contextBytes", 0, kMaxSafeInteger, &i)) p.context = i;
  if (get_int(o, s, "maxNumSeqs", 1, kIntMax, &i)) p.step.max_num_seqs = int(i);
  if (get_int(o, s, "maxNumBatchedTokens", 1, kIntMax, &i)) p.step.max_num_batched_tokens = int(i);
  if (get_int(o, s, "maxModelLen", 0, kIntMax, &i)) p.step.max_model_len = int(i);
  if (get_int(o, s, "blockSize", 1, 1 << 16, &i)) p.block_size = int(i);
  get_bool(o, s, "int8", &p.int8);
  get_bool(o, s, "int8LmHead", &p.int8_lm_head);
  return p;
}

Napi::Object from_gpu_plan(Napi::Env env, const gyre::GpuPlan& p, const gyre::GpuPlanOptions& options) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* key, int64_t v) { o.Set(key, double(v)); };
  set("totalBytes", options.total);
  set("budgetBytes", p.budget);
  set("weightBytes", p.weights);
  set("stepBytes", p.step.total());
  set("activationBytes", p.step.activations);
  set("logitsBytes", p.step.logits);
  set("workspaceBytes", p.step.workspace);
  set("contextBytes", p.context);
  set("marginBytes", p.margin);
  set("kvBytes", p.kv_bytes);
  set("kvBytesPerToken", p.kv_bytes_per_token);
  set("blockSize", options.block_size);
  set("kvBlocks", p.kv_blocks);
  set("kvTokens", p.kv_tokens);
  return o;
}

Napi::Object from_config(Napi::Env env, const gyre::ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("hiddenSize", c.hidden_size);
  o.Set("intermediateSize", c.intermediate_size);
  o.Set("numLayers", c.num_layers);
  o.Set("numHeads", c.num_heads);
  o.Set("numKvHeads", c.num_kv_heads);
  o.Set("headDim", c.head_dim);
  o.Set("vocabSize", c.vocab_size);
  o.Set("maxPositionEmbeddings", c.max_position_embeddings);
  o.Set("rmsNormEps", double(c.rms_norm_eps));
  o.Set("ropeTheta", c.rope_theta);
  o.Set("slidingWindow", c.sliding_window);
  o.Set("tieWordEmbeddings", c.tie_word_embeddings);
  o.Set("bosTokenId", c.bos_token_id);
  Napi::Array eos = Napi::Array::New(env, c.eos_token_ids.size());
  for (size_t i = 0; i < c.eos_token_ids.size(); ++i) eos.Set(uint32_t(i), c.eos_token_ids[i]);
  o.Set("eosTokenIds", eos);
  o.Set("quantization", c.gyre_int8 ? "int8" : "none");
  return o;
}

Napi::Object from_stats(Napi::Env env, const gyre::EngineStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("numRunning", s.num_running);
  o.Set("numWaiting", s.num_waiting);
  o.Set("numPreemptions", double(s.num_preemptions));
  o.Set("numBlocksTotal", s.num_blocks_total);
  o.Set("numBlocksUsed", s.num_blocks_used);
  o.Set("numBlocksFree", s.num_blocks_free);
  o.Set("numBlocksCached", s.num_blocks_cached);
  o.Set("prefixCacheHitTokens", double(s.prefix_cache_hit_tokens));
  o.Set("prefixCacheQueryTokens", double(s.prefix_cache_query_tokens));
  o.Set("numBlocksReleasedWindow", double(s.num_blocks_released_window));
  o.Set("numSteps", double(s.num_steps));
  o.Set("numPromptTokens", double(s.num_prompt_tokens));
  o.Set("numGeneratedTokens", double(s.num_generated_tokens));
  o.Set("maskWaitMs", double(s.mask_wait_us) / 1000.0);
  return o;
}

namespace {

// The names are NativeFinishReason's (src/engine/native.ts).
Napi::Value finish_value(Napi::Env env, gyre::FinishReason r) {
  if (r == gyre::FinishReason::kNone) return env.Null();
  return Napi::String::New(env, gyre::finish_reason_name(r));
}

// A Float32Array over the vector's own storage; the vector is freed with the buffer.
Napi::Float32Array take_floats(Napi::Env env, std::vector<float>&& values) {
  auto* owned = new std::vector<float>(std::move(values));
  auto buffer = Napi::ArrayBuffer::New(env, owned->data(), owned->size() * sizeof(float),
                                       [](Napi::Env, void*, std::vector<float>* v) { delete v; }, owned);
  return Napi::Float32Array::New(env, owned->size(), buffer, 0);
}

}  // namespace

Napi::Array from_step(Napi::Env env, gyre::StepOutput& step) {
  Napi::Array arr = Napi::Array::New(env, step.outputs.size());
  for (size_t k = 0; k < step.outputs.size(); ++k) {
    gyre::SeqOutput& s = step.outputs[k];
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", double(s.id));
    Napi::Array tokens = Napi::Array::New(env, s.tokens.size());
    for (size_t i = 0; i < s.tokens.size(); ++i) tokens.Set(uint32_t(i), s.tokens[i]);
    o.Set("tokens", tokens);
    if (!s.logprobs.empty()) {
      Napi::Array lp = Napi::Array::New(env, s.logprobs.size());
      for (size_t i = 0; i < s.logprobs.size(); ++i) lp.Set(uint32_t(i), double(s.logprobs[i]));
      o.Set("logprobs", lp);
    }
    if (!s.top.empty()) {
      Napi::Array top = Napi::Array::New(env, s.top.size());
      for (size_t i = 0; i < s.top.size(); ++i) {
        Napi::Array row = Napi::Array::New(env, s.top[i].size());
        for (size_t j = 0; j < s.top[i].size(); ++j) {
          Napi::Object t = Napi::Object::New(env);
          t.Set("token", s.top[i][j].token);
          t.Set("logprob", double(s.top[i][j].logprob));
          row.Set(uint32_t(j), t);
        }
        top.Set(uint32_t(i), row);
      }
      o.Set("top", top);
    }
    o.Set("finish", finish_value(env, s.finish));
    if (s.stop_token >= 0) o.Set("stopTokenId", s.stop_token);
    if (!s.error.empty()) o.Set("error", s.error);
    o.Set("numPromptTokens", s.num_prompt_tokens);
    o.Set("numCachedTokens", s.num_cached_tokens);
    if (!s.prompt_logits.empty()) o.Set("promptLogits", take_floats(env, std::move(s.prompt_logits)));
    if (s.has_prompt_logprobs)
      o.Set("promptLogprobs", take_floats(env, std::move(s.prompt_logprobs)));
    arr.Set(uint32_t(k), o);
  }
  return arr;
}

}  // namespace gyre_node
