// The Node addon: loadEngine, readConfig, quantizeInt8, shapeNames, shapeConfig, planGpuMemory, setSendBuffer and the NativeEngine class
// (src/engine/native.ts).
#include <napi.h>
#include <sys/socket.h>

#include "addon.h"
#include "convert.h"
#include "engine_wrap.h"
#include "gyre/config.h"
#include "gyre/gpu_memory.h"
#include "gyre/shapes.h"
#include "gyre/weights.h"
#include "load_worker.h"

namespace gyre_node {
namespace {

Napi::Value ReadConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "readConfig: modelDir must be a string");
  try {
    return from_config(env, gyre::load_config(info[0].As<Napi::String>().Utf8Value()));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// quantizeInt8(data, dtype, rows, cols) -> {q: Int8Array, scale: Float32Array}: the loader's own
// quantizer, so `gyre quantize` files load bit-identical to quantizing at load.
Napi::Value QuantizeInt8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "quantizeInt8: data must be a Uint8Array");
  if (!info[1].IsString()) throw Napi::TypeError::New(env, "quantizeInt8: dtype must be 'F32', 'F16' or 'BF16'");
  const std::string dt = info[1].As<Napi::String>().Utf8Value();
  gyre::TensorView w;
  if (dt == "F32") w.dtype = gyre::DType::kF32;
  else if (dt == "F16") w.dtype = gyre::DType::kF16;
  else if (dt == "BF16") w.dtype = gyre::DType::kBF16;
  else throw Napi::TypeError::New(env, "quantizeInt8: dtype must be 'F32', 'F16' or 'BF16', got '" + dt + "'");
  if (!info[2].IsNumber() || !info[3].IsNumber()) throw Napi::TypeError::New(env, "quantizeInt8: rows and cols must be numbers");
  const double rows = info[2].As<Napi::Number>().DoubleValue(), cols = info[3].As<Napi::Number>().DoubleValue();
  if (!(rows >= 1 && cols >= 1 && rows == static_cast<double>(static_cast<int64_t>(rows)) &&
        cols == static_cast<double>(static_cast<int64_t>(cols))))
    throw Napi::RangeError::New(env, "quantizeInt8: rows and cols must be positive integers");
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  w.shape = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
  w.nbytes = static_cast<size_t>(rows * cols) * gyre::dtype_size(w.dtype);
  if (data.ByteLength() != w.nbytes)
    throw Napi::RangeError::New(env, "quantizeInt8: data holds " + std::to_string(data.ByteLength()) + " bytes, expected " +
                                         std::to_string(w.nbytes) + " for [" + std::to_string(w.shape[0]) + ", " +
                                         std::to_string(w.shape[1]) + "] " + dt);
  if (w.dtype != gyre::DType::kF32 || data.ByteOffset() % 4 == 0) {
    w.data = data.Data();
  }
  std::vector<uint8_t> aligned;
  if (!w.data) {  // unaligned float32: copy
    aligned.assign(data.Data(), data.Data() + data.ByteLength());
    w.data = aligned.data();
  }
  Napi::Int8Array q = Napi::Int8Array::New(env, static_cast<size_t>(rows * cols));
  Napi::Float32Array scale = Napi::Float32Array::New(env, static_cast<size_t>(rows));
  try {
    gyre::quantize_int8_rows(w, q.Data(), scale.Data());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("q", q);
  out.Set("scale", scale);
  return out;
}

Napi::Value ShapeNames(const Napi::CallbackInfo& info) {
  const std::vector<std::string> names = gyre::shape_names();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(uint32_t(i), names[i]);
  return out;
}

Napi::Value ShapeConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "shapeConfig: name must be a string");
  try {
    return from_config(env, gyre::shape_config(info[0].As<Napi::String>().Utf8Value()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// planGpuMemory(model, options): the KV pool the CUDA backend sizes for a model on a card.
Napi::Value PlanGpuMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const gyre::ModelConfig c = to_plan_config(info[0]);
    const gyre::GpuPlanOptions o = to_gpu_plan_options(info[1]);
    return from_gpu_plan(env, gyre::plan_gpu_memory(c, o), o);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// setSendBuffer(fd, bytes): SO_SNDBUF on a connected socket (Node has no API for it on TCP).
// A fixed size turns off the kernel's autotuning, which lets a loopback socket that nobody
// reads hold ~4 MB. Returns false when the call failed.
Napi::Value SetSendBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "setSendBuffer: fd and bytes must be numbers");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int bytes = info[1].As<Napi::Number>().Int32Value();
  if (fd < 0 || bytes <= 0) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0);
}

}  // namespace
}  // namespace gyre_node

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace gyre_node;
  env.SetInstanceData(new AddonData());
  EngineWrap::Init(env);
  exports.Set("loadEngine", Napi::Function::New(env, LoadEngine, "loadEngine"));
  exports.Set("readConfig", Napi::Function::New(env, ReadConfig, "readConfig"));
  exports.Set("quantizeInt8", Napi::Function::New(env, QuantizeInt8, "quantizeInt8"));
  exports.Set("shapeNames", Napi::Function::New(env, ShapeNames, "shapeNames"));
  exports.Set("shapeConfig", Napi::Function::New(env, ShapeConfig, "shapeConfig"));
  exports.Set("planGpuMemory", Napi::Function::New(env, PlanGpuMemory, "planGpuMemory"));
  exports.Set("setSendBuffer", Napi::Function::New(env, SetSendBuffer, "setSendBuffer"));
  return exports;
}

NODE_API_MODULE(gyre, Init)
