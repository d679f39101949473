// Errors the engine raises. Every message names the file and the field or tensor at fault.
#pragma once
#include <stdexcept>
#include <string>

namespace gyre {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace gyre
