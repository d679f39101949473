// What submit() refuses, with the numbers that make a request invalid.
#pragma once
#include "gyre/engine.h"

namespace gyre {

struct RequestLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  int max_num_batched_tokens = 0;
  int sliding_window = 0;  // 0: none
  int block_size = 0;
  int num_blocks = 0;      // the KV pool
};

// Throws gyre::Error naming the request and the field at fault.
void validate_request(const Request& request, const RequestLimits& limits);

}  // namespace gyre
