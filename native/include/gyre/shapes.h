// The model shapes Gyre knows by name: the published models' config.json (Llama-2-7B/13B,
// Mistral-7B v0.1) and two small Llama shapes for tests and demos. The one table: make-model,
// gyre_bench, the sizing in validate and the CDK stack, and the Python peer (shapes.json) read it.
#pragma once
#include <string>
#include <vector>

#include "gyre/config.h"

namespace gyre {

// Names in table order: tiny, 100m, llama-2-7b, llama-2-13b, mistral-7b.
std::vector<std::string> shape_names();
// The config of a named shape; throws gyre::Error naming the known shapes.
ModelConfig shape_config(const std::string& name);
bool has_shape(const std::string& name);
// The table as JSON (native/scripts/shapes.json): {"<name>": {config.json fields}, ...}.
std::string shapes_json();

}  // namespace gyre
