#include "cuda/decode_graphs.h"

namespace gyre {

DecodeGraphs::Graph::~Graph() {
  if (exec) cudaGraphExecDestroy(exec);
}

int DecodeGraphs::padded_size(int n) {
  if (n <= 0 || n > kMaxBatch) return 0;
  if (n <= 8) {
    int p = 1;
    while (p < n) p *= 2;
    return p;
  }
  return (n + 7) / 8 * 8;
}

DecodeGraphs::Graph& DecodeGraphs::slot(int size, int width, const std::vector<const void*>& buffers) {
  if (width != width_) {
    graphs_.clear();
    width_ = width;
  }
  std::unique_ptr<Graph>& g = graphs_[size];
  if (g && g->buffers != buffers) {
    graphs_.clear();  // a buffer moved: every graph points at the old one
    return slot(size, width, buffers);
  }
  if (!g) {
    g = std::make_unique<Graph>();
    g->buffers = buffers;
  }
  return *g;
}

void DecodeGraphs::capture(Graph& g, cudaStream_t stream, const std::function<void()>& enqueue) {
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    enqueue();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // leaves the stream usable
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  const cudaError_t e = cudaGraphInstantiate(&g.exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    g.exec = nullptr;
    CUDA_CHECK(e);
  }
  ++num_captures_;
}

void DecodeGraphs::launch(Graph& g, cudaStream_t stream) {
  CUDA_CHECK(cudaGraphLaunch(g.exec, stream));
  ++num_replays_;
}

}  // namespace gyre
