// The Node addon: loadEngine, readConfig and the NativeEngine class (src/engine/native.ts).
#include <napi.h>

#include "addon.h"
#include "convert.h"
#include "engine_wrap.h"
#include "gyre/config.h"
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

}  // namespace
}  // namespace gyre_node

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace gyre_node;
  env.SetInstanceData(new AddonData());
  EngineWrap::Init(env);
  exports.Set("loadEngine", Napi::Function::New(env, LoadEngine, "loadEngine"));
  exports.Set("readConfig", Napi::Function::New(env, ReadConfig, "readConfig"));
  return exports;
}

NODE_API_MODULE(gyre, Init)
