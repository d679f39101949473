#include "load_worker.h"

#include <memory>
#include <string>

#include "convert.h"
#include "engine_channel.h"
#include "engine_wrap.h"
#include "gyre/weights.h"

namespace gyre_node {
namespace {

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string dir, gyre::EngineOptions options, std::shared_ptr<EngineChannel> channel)
      : Napi::AsyncWorker(env, "gyre.engine.load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        dir_(std::move(dir)),
        options_(std::move(options)),
        channel_(std::move(channel)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::shared_ptr<gyre::ModelWeights> weights = gyre::load_model(dir_, options_.load);
      dtype_ = dtype_string(weights->dtype);
      quantization_ = gyre::quantization_name(weights->quantization);
      engine_ = std::make_unique<gyre::Engine>(std::move(weights), options_, channel_->callback());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    deferred_.Resolve(EngineWrap::NewInstance(Env(), std::move(engine_), channel_, dtype_, quantization_,
                                                options_.kv.block_size));
  }
  void OnError(const Napi::Error& e) override {
    channel_->release();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string dir_;
  gyre::EngineOptions options_;
  std::shared_ptr<EngineChannel> channel_;
  std::unique_ptr<gyre::Engine> engine_;
  std::string dtype_;
  std::string quantization_;
};

}  // namespace

Napi::Value LoadEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "loadEngine: modelDir must be a string");
  if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "loadEngine: onStep must be a function");
  gyre::EngineOptions options = to_engine_options(info[1]);
  auto channel = EngineChannel::create(env, info[2].As<Napi::Function>());
  auto* worker = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), std::move(options), channel);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace gyre_node
