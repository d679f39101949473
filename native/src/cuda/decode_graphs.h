// CUDA graphs for pure decode steps (every sequence brings one token and wants its logits).
// Such a step's kernels depend only on the batch size, the block-table width and the device
// buffers they are given, so it is captured once per padded batch size (1, 2, 4, 8, then steps
// of 8 up to kMaxBatch), with the batch metadata in a device buffer of its own, and replayed:
// the host copies the new metadata into that buffer and launches the graph. Prefill and mixed
// steps run eagerly.
//
// Padding rows are sequences without blocks: no K/V written (slot -1), no key visible, logits
// dropped. A graph remembers the buffers it was captured with; when any of them moved (a
// larger eager batch regrew it, the KV pool was reallocated) or the tables got wider, the
// graphs are dropped and captured again.
//
// Only stream capture of launches and async copies/memsets is used (ThreadLocal mode,
// EndCapture, Instantiate, Launch, ExecDestroy, GraphDestroy): what the emulation supports.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "cuda/cuda_util.h"

namespace gyre {

class DecodeGraphs {
 public:
  static constexpr int kMaxBatch = 256;

  struct Graph {
    cudaGraphExec_t exec = nullptr;
    DeviceBuffer meta;                   // the step's metadata, at offsets fixed by (size, width)
    std::vector<const void*> buffers;    // every device buffer the captured kernels use
    ~Graph();
  };

  // The padded batch size for n sequences; 0 when n is past kMaxBatch (run eagerly).
  static int padded_size(int n);

  // The graph slot for padded size `size` at table width `width`: a fresh one (exec null) when
  // there was none or its buffers or width changed.
  Graph& slot(int size, int width, const std::vector<const void*>& buffers);
  // Captures what `enqueue` puts on `stream` into g.
  void capture(Graph& g, cudaStream_t stream, const std::function<void()>& enqueue);
  void launch(Graph& g, cudaStream_t stream);
  void clear() { graphs_.clear(); }

  int64_t num_captures() const { return num_captures_; }
  int64_t num_replays() const { return num_replays_; }

 private:
  int width_ = 0;
  std::map<int, std::unique_ptr<Graph>> graphs_;
  int64_t num_captures_ = 0, num_replays_ = 0;
};

}  // namespace gyre
