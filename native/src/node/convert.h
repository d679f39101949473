// Conversions between JS values and the engine's C++ types (see src/engine/native.ts).
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "gyre/engine.h"
#include "gyre/gpu_memory.h"
#include "gyre/weights.h"

namespace gyre_node {

gyre::EngineOptions to_engine_options(const Napi::Value& value);
gyre::SamplingParams to_sampling_params(const Napi::Value& value);
std::vector<int32_t> to_prompt(const Napi::Value& value);
// A request id: an integer in [0, 2^53).
uint64_t to_id(const Napi::Value& value, const char* what);

// planGpuMemory's argument: the model ({shape, layers} or {modelDir}) and the plan's options.
gyre::ModelConfig to_plan_config(const Napi::Value& value);
gyre::GpuPlanOptions to_gpu_plan_options(const Napi::Value& value);
Napi::Object from_gpu_plan(Napi::Env env, const gyre::GpuPlan& plan, const gyre::GpuPlanOptions& options);

Napi::Object from_config(Napi::Env env, const gyre::ModelConfig& config);
Napi::Object from_stats(Napi::Env env, const gyre::EngineStats& stats);
// Moves the outputs' buffers into JS (prompt logits are handed over without a copy).
Napi::Array from_step(Napi::Env env, gyre::StepOutput& step);
const char* dtype_string(gyre::DType dtype);

}  // namespace gyre_node
