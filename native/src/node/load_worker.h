// loadEngine(dir, options, onStep): loads the weights and starts the engine off the JS thread.
#pragma once
#include <napi.h>

namespace gyre_node {

Napi::Value LoadEngine(const Napi::CallbackInfo& info);

}  // namespace gyre_node
