// The path from the engine thread to JS: one thread-safe function call per engine step.
// The TSFN keeps Node alive only while requests are in flight, so an idle engine lets the
// process exit while a busy one does not.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <unordered_set>

#include "gyre/engine.h"

namespace gyre_node {

struct EngineChannel;
void deliver_step(Napi::Env env, Napi::Function on_step, EngineChannel* channel, gyre::StepOutput* step);
using StepTsfn = Napi::TypedThreadSafeFunction<EngineChannel, gyre::StepOutput, deliver_step>;

struct EngineChannel : std::enable_shared_from_this<EngineChannel> {
  // Creates the TSFN (unreferenced) on the JS thread. The channel lives until the TSFN is
  // finalized and no holder is left.
  static std::shared_ptr<EngineChannel> create(Napi::Env env, Napi::Function on_step);

  // The engine's output callback: runs on the engine thread and holds the channel.
  gyre::Engine::OutputCallback callback();

  // JS thread only.
  void track(Napi::Env env, uint64_t id);   // a request went in
  void finish(Napi::Env env, uint64_t id);  // a request finished
  // Once the engine thread is gone: no more calls will come.
  void release();

  StepTsfn tsfn;
  std::unordered_multiset<uint64_t> in_flight;
  bool released = false;
};

}  // namespace gyre_node
