"""The peer's model: LlamaForCausalLM / MistralForCausalLM of a shape, fp16, random weights of its
own made on the GPU, across the transformers versions that name things differently."""
import dataclasses
import inspect

from peer.shapes import SHAPES, VOCAB

def config_field_names(cls):
    """The names a config class takes: its dataclass fields (transformers >= 5.x configs are @strict
    dataclasses, which may refuse unknown keywords), else its __init__ parameters; None if it takes **kwargs."""
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(params) | {"*"}
    return set(params)


def make_config(transformers, s, layers, info):
    """LlamaConfig / MistralConfig of the shape. RoPE: transformers 5 names it rope_parameters
    ({rope_type, rope_theta}); 4.x took rope_theta. Says in `info` which path ran."""
    cls = transformers.MistralConfig if s["arch"] == "mistral" else transformers.LlamaConfig
    kw = dict(hidden_size=s["hidden"], intermediate_size=s["intermediate"], num_hidden_layers=layers or s["layers"],
              num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], head_dim=s["hidden"] // s["heads"],
              vocab_size=VOCAB, max_position_embeddings=s["max_pos"], rms_norm_eps=1e-5, hidden_act="silu",
              bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if s["arch"] == "mistral":
        kw["sliding_window"] = s["sliding_window"]
    else:
        kw.update(attention_bias=False, mlp_bias=False)
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    names = config_field_names(cls)
    if names is not None and "rope_parameters" in names:
        kw["rope_parameters"] = dict(rope)
        info["rope"] = "rope_parameters (transformers 5)"
    else:
        kw["rope_theta"] = 10000.0
        info["rope"] = "rope_theta (transformers 4.x)"
    if names is not None and "*" not in names and dataclasses.is_dataclass(cls):
        dropped = [k for k in kw if k not in names]
        if dropped:
            info["config_kwargs_dropped"] = dropped
        kw = {k: v for k, v in kw.items() if k in names}
    try:
        cfg = cls(**kw)
    except TypeError as e:  # an unknown keyword after all: keep the ones every version takes
        info["config_retry"] = repr(e)[:300]
        core = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "vocab_size", "max_position_embeddings", "rms_norm_eps")
        cfg = cls(**{k: kw[k] for k in core})
        for k, v in kw.items():
            if k not in core:
                try:
                    setattr(cfg, k, v)
                except Exception:
                    pass
    rp = getattr(cfg, "rope_parameters", None)
    if rp is not None and (not isinstance(rp, dict) or rp.get("rope_theta") != 10000.0):
        try:
            cfg.rope_parameters = dict(rope)
        except Exception as e:
            info["rope_set_error"] = repr(e)[:300]
    info["config_class"] = type(cfg).__name__
    return cfg


def make_model(torch, shape, layers, seed, info):
    import transformers
    from transformers import AutoModelForCausalLM
    s = SHAPES[shape]
    cfg = make_config(transformers, s, layers, info)
    torch.manual_seed(seed)
    model = None
    with torch.device("cuda"):
        # transformers 5: dtype=; 4.x (< 4.56): torch_dtype=; else the default dtype, converted below
        for name, extra in (("dtype", dict(dtype=torch.float16)), ("torch_dtype", dict(torch_dtype=torch.float16)),
                            ("no dtype keyword", {})):
            try:
                model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", **extra)
                info["from_config"] = f"AutoModelForCausalLM.from_config(cfg, {name}, attn_implementation='sdpa')"
                break
            except TypeError as e:
                info.setdefault("from_config_errors", []).append(f"{name}: {e!r}"[:300])
    if model is None:
        raise RuntimeError("AutoModelForCausalLM.from_config failed with every dtype keyword")
    model = model.to(device="cuda", dtype=torch.float16).eval()
    # Our own random weights: N(0, 0.02) for matrices and the embedding, ones for the norms.
    g = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    if model.generation_config is not None:
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    return model, cfg
