#include "engine_wrap.h"

#include "addon.h"
#include "convert.h"

namespace gyre_node {
namespace {

// Destroys the engine (joining its thread) off the JS thread, then releases the TSFN.
class CloseWorker : public Napi::AsyncWorker {
 public:
  CloseWorker(Napi::Env env, std::unique_ptr<gyre::Engine> engine, std::shared_ptr<EngineChannel> channel)
      : Napi::AsyncWorker(env, "gyre.engine.close"),
        deferred_(Napi::Promise::Deferred::New(env)),
        engine_(std::move(engine)),
        channel_(std::move(channel)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      engine_.reset();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    channel_->release();
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    channel_->release();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<gyre::Engine> engine_;
  std::shared_ptr<EngineChannel> channel_;
};

}  // namespace

void EngineWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeEngine",
                                    {
                                        InstanceMethod<&EngineWrap::Submit>("submit"),
                                        InstanceMethod<&EngineWrap::Abort>("abort"),
                                        InstanceMethod<&EngineWrap::SetMask>("setMask"),
                                        InstanceMethod<&EngineWrap::SetGrammarBusy>("setGrammarBusy"),
                                        InstanceMethod<&EngineWrap::Stats>("stats"),
                                        InstanceMethod<&EngineWrap::Config>("config"),
                                        InstanceMethod<&EngineWrap::Backend>("backend"),
                                        InstanceMethod<&EngineWrap::MaxModelLen>("maxModelLen"),
                                        InstanceMethod<&EngineWrap::BlockSize>("blockSize"),
                                        InstanceMethod<&EngineWrap::Close>("close"),
                                    });
  env.GetInstanceData<AddonData>()->engine_ctor = Napi::Persistent(ctor);
}

Napi::Object EngineWrap::NewInstance(Napi::Env env, std::unique_ptr<gyre::Engine> engine,
                                     std::shared_ptr<EngineChannel> channel, std::string dtype,
                                     std::string quantization, int block_size) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->engine_ctor.New({});
  EngineWrap* self = Unwrap(obj);
  self->engine_ = std::move(engine);
  self->channel_ = std::move(channel);
  self->dtype_ = std::move(dtype);
  self->quantization_ = std::move(quantization);
  self->block_size_ = block_size;
  return obj;
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {}

EngineWrap::~EngineWrap() {
  // A close() in progress owns the engine and releases the channel itself.
  if (!engine_) return;
  engine_.reset();
  channel_->release();
}

gyre::Engine& EngineWrap::engine(Napi::Env env) {
  if (!engine_) throw Napi::Error::New(env, "the engine is closed");
  return *engine_;
}

Napi::Value EngineWrap::Submit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gyre::Engine& eng = engine(env);
  gyre::Request req;
  req.id = to_id(info[0], "id");
  req.prompt = to_prompt(info[1]);
  req.params = to_sampling_params(info[2]);
  req.prompt_logits = info[3].ToBoolean().Value();
  req.prompt_logprobs = info.Length() > 4 && info[4].ToBoolean().Value();
  uint64_t id = req.id;
  try {
    eng.submit(std::move(req));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  channel_->track(env, id);
  return env.Undefined();
}

Napi::Value EngineWrap::Abort(const Napi::CallbackInfo& info) {
  engine(info.Env()).abort(to_id(info[0], "id"));
  return info.Env().Undefined();
}

Napi::Value EngineWrap::SetMask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gyre::Engine& eng = engine(env);
  const uint64_t id = to_id(info[0], "id");
  const double index = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!(index >= 0 && index <= 2147483647.0 && index == static_cast<int>(index)))
    throw Napi::TypeError::New(env, "outputIndex must be a non-negative integer");
  if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "mask must be an Int32Array or Uint32Array");
  auto arr = info[2].As<Napi::TypedArray>();
  if (arr.TypedArrayType() != napi_int32_array && arr.TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "mask must be an Int32Array or Uint32Array");
  const auto* data = reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) +
                                                       arr.ByteOffset());
  try {
    eng.set_mask(id, static_cast<int>(index), std::vector<uint32_t>(data, data + arr.ElementLength()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

Napi::Value EngineWrap::SetGrammarBusy(const Napi::CallbackInfo& info) {
  engine(info.Env()).set_grammar_busy(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value EngineWrap::Stats(const Napi::CallbackInfo& info) {
  return from_stats(info.Env(), engine(info.Env()).stats());
}

Napi::Value EngineWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Object o = from_config(info.Env(), engine(info.Env()).config());
  o.Set("dtype", dtype_);
  o.Set("quantization", quantization_);
  return o;
}

Napi::Value EngineWrap::Backend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), engine(info.Env()).backend_name());
}

Napi::Value EngineWrap::MaxModelLen(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), engine(info.Env()).max_model_len());
}

Napi::Value EngineWrap::BlockSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), block_size_);
}

Napi::Value EngineWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) {  // closed (or closing) already
    auto done = Napi::Promise::Deferred::New(env);
    done.Resolve(env.Undefined());
    return done.Promise();
  }
  auto* worker = new CloseWorker(env, std::move(engine_), channel_);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace gyre_node
