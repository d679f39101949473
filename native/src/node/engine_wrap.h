// The JS object for a loaded engine (NativeEngine in src/engine/native.ts).
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "engine_channel.h"
#include "gyre/engine.h"

namespace gyre_node {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  // Defines the class and keeps its constructor in the addon data (it is not exported).
  static void Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::unique_ptr<gyre::Engine> engine,
                                  std::shared_ptr<EngineChannel> channel, std::string dtype,
                                  std::string quantization, int block_size);

  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override;  // an engine never closed is stopped here (joins its thread)

 private:
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value SetMask(const Napi::CallbackInfo& info);
  Napi::Value SetGrammarBusy(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value MaxModelLen(const Napi::CallbackInfo& info);
  Napi::Value BlockSize(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  gyre::Engine& engine(Napi::Env env);  // throws when closed

  std::unique_ptr<gyre::Engine> engine_;
  std::shared_ptr<EngineChannel> channel_;
  std::string dtype_;
  std::string quantization_;
  int block_size_ = 0;
};

}  // namespace gyre_node
