"""Model shapes of the peer: the same as gyre_bench's and make-model's, by name."""

SHAPES = {  # src/model/make_model.ts SHAPES; gyre_bench's shape_config
    "llama-2-7b": dict(arch="llama", hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008, max_pos=4096),
    "llama-2-13b": dict(arch="llama", hidden=5120, layers=40, heads=40, kv_heads=40, intermediate=13824, max_pos=4096),
    "mistral-7b": dict(arch="mistral", hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336,
                       max_pos=32768, sliding_window=4096),
}
VOCAB = 32000
