// Per-environment addon state (worker-thread safe: no statics).
#pragma once
#include <napi.h>

namespace gyre_node {

struct AddonData {
  Napi::FunctionReference engine_ctor;  // EngineWrap's constructor, not exported
};

}  // namespace gyre_node
