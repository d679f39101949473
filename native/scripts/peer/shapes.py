"""Model shapes of the peer, by name: the native shape table (gyre/shapes.h), exported by the
gyre_shapes tool into native/scripts/shapes.json."""
import json
import os

_JSON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shapes.json")


def _peer_shape(c):
    s = dict(arch="mistral" if c["architecture"] == "MistralForCausalLM" else "llama", hidden=c["hidden_size"],
             layers=c["num_hidden_layers"], heads=c["num_attention_heads"], kv_heads=c["num_key_value_heads"],
             intermediate=c["intermediate_size"], max_pos=c["max_position_embeddings"])
    if c.get("sliding_window"):
        s["sliding_window"] = c["sliding_window"]
    return s


with open(_JSON) as _f:
    SHAPES = {name: _peer_shape(c) for name, c in json.load(_f).items()
              if name in ("llama-2-7b", "llama-2-13b", "mistral-7b")}
VOCAB = 32000
