#include "engine_channel.h"

#include "convert.h"

namespace gyre_node {

std::shared_ptr<EngineChannel> EngineChannel::create(Napi::Env env, Napi::Function on_step) {
  auto channel = std::make_shared<EngineChannel>();
  // The finalizer owns one reference, so the context outlives every queued call.
  auto* hold = new std::shared_ptr<EngineChannel>(channel);
  channel->tsfn = StepTsfn::New(
      env, on_step, "gyre.engine.step", 0 /* unbounded queue: the engine never waits on JS */, 1,
      channel.get(), [](Napi::Env, std::shared_ptr<EngineChannel>* h, EngineChannel*) { delete h; }, hold);
  channel->tsfn.Unref(env);
  return channel;
}

gyre::Engine::OutputCallback EngineChannel::callback() {
  // The engine owns the callback, so the channel lives as long as the engine thread can call.
  std::shared_ptr<EngineChannel> self = shared_from_this();
  return [self](gyre::StepOutput&& out) {
    auto* step = new gyre::StepOutput(std::move(out));
    if (self->tsfn.NonBlockingCall(step) != napi_ok) delete step;
  };
}

void EngineChannel::track(Napi::Env env, uint64_t id) {
  if (released) return;
  if (in_flight.empty()) tsfn.Ref(env);
  in_flight.insert(id);
}

void EngineChannel::finish(Napi::Env env, uint64_t id) {
  if (released) return;
  auto it = in_flight.find(id);
  if (it == in_flight.end()) return;
  in_flight.erase(it);
  if (in_flight.empty()) tsfn.Unref(env);
}

void EngineChannel::release() {
  if (released) return;
  released = true;
  in_flight.clear();
  tsfn.Release();
}

void deliver_step(Napi::Env env, Napi::Function on_step, EngineChannel* channel, gyre::StepOutput* step) {
  std::unique_ptr<gyre::StepOutput> owned(step);
  if (env == nullptr || on_step.IsEmpty()) return;  // the environment is shutting down
  for (const auto& out : owned->outputs) {
    if (out.finish != gyre::FinishReason::kNone) channel->finish(env, out.id);
  }
  Napi::Array outputs = from_step(env, *owned);
  on_step.Call({outputs});
}

}  // namespace gyre_node
