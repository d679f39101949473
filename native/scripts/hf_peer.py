#!/usr/bin/env python3
"""The transformers peer of gyre_bench, on the same GPU in the same device-check run (issue 9).

On a model of the same shape as gyre_bench's (LlamaForCausalLM / MistralForCausalLM, fp16, random
normal weights of its own, made on the GPU, seeded), it measures:

  matmul    torch.matmul's fp16 rate on the prefill GEMM shapes: M = 512 and 2048 tokens times each
            linear layer of one decoder layer as gyre runs it (qkv fused [(nh + 2 nkv) d, H], o
            [H, nh d], gate_up fused [2I, H], down [H, I]; the same FLOPs as the unfused layers),
            CUDA events, median; plus one 8192^3 product as the card's peak. The ceiling for prefill.
  generate  plain model.generate at batch 1 (sdpa, dynamic cache): 512 prompt tokens, then
            decode ms/token = (time for 65 new tokens - time for 1) / 64.
  workload  continuous batching, attn_implementation "paged|sdpa", CUDA graphs on, fp16, greedy,
            EOS off, exactly output_tokens new tokens per request: the trace gyre_bench replays
            (--trace, JSON lines {prompt_tokens, output_tokens}; the same prompt token ids,
            3 + splitmix64(k << 20 | j) % (vocab - 3) for request number k), replayed for each N in
            --users by N closed-loop users, max(--min-requests, --requests-per-user x N) requests
            per level from one cursor across levels, after the same unmeasured warm-up.
            API: model.generate_batch() takes one max_new_tokens for all prompts and returns when
            all are done, so it cannot hold N users in a closed loop with per-request lengths. We use
            what generate_batch wraps: model.init_continuous_batching(...) -> ContinuousBatchingManager
            (warmup(), start(), add_request(input_ids, request_id, max_new_tokens,
            record_timestamps=True), get_result(), stop()). Latency = finish - created (the
            manager's own perf_counter stamps), TTFT = first token's stamp - created, TPOT =
            (last - first stamp) / (tokens - 1). If the manager or its CUDA-graph warm-up fails, it
            is made again with use_cuda_graph=False ("cuda_graph", "manager_errors"); if that fails
            too or the manager API is missing, each level falls back to one generate_batch call over
            the level's prompts with their mean output length (said in the JSON as "mode").
            API facts (transformers main, 2026, continuous_batching/continuous_api.py, requests.py,
            initialization.py): init_continuous_batching(generation_config, continuous_batching_config,
            workload_hints); ContinuousBatchingConfig(use_cuda_graph, max_batch_tokens, ...) from
            transformers.generation (>= 5.3); the manager prefixes the model's attention with "paged|";
            add_request(input_ids, request_id, max_new_tokens, streaming, record_timestamps,
            eos_token_id); GenerationOutput(request_id, generated_tokens, error, status,
            created_time, lifespan, timestamps), all stamps time.perf_counter().

Every phase's failure is recorded in the JSON ("<phase>_error") and the next phase runs; the JSON
is rewritten after every phase and level, so a run killed by a time limit keeps what it had.

usage: hf_peer.py --shape llama-2-7b [--layers N] [--trace FILE.jsonl] [--users 1,4,16,32,64]
                  [--requests-per-user 2] [--min-requests 8] [--phases matmul,generate,workload]
                  [--time-limit-s T] [--max-batch-tokens N] [--no-cuda-graph] --json OUT.json
"""
import argparse
import dataclasses
import gc
import inspect
import json
import math
import os
import statistics
import sys
import time
import traceback

# The native shape table (gyre/shapes.h), exported by gyre_shapes; gyre_bench's shapes.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.json")) as _f:
    SHAPES = {name: dict(arch="mistral" if c["architecture"] == "MistralForCausalLM" else "llama",
                         hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=c["num_attention_heads"],
                         kv_heads=c["num_key_value_heads"], intermediate=c["intermediate_size"],
                         max_pos=c["max_position_embeddings"], sliding_window=c["sliding_window"])
              for name, c in json.load(_f).items() if name in ("llama-2-7b", "llama-2-13b", "mistral-7b")}
VOCAB = 32000

# --- the trace and the prompt ids: the same arithmetic as gyre_bench.cc ---

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    x = (x + GOLDEN) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


class Rng:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        v = splitmix64(self.state)
        self.state = (self.state + GOLDEN) & M64
        return v

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def lround(x):
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def generate_trace(seed, n):
    out = []
    for i in range(n):
        r = Rng(splitmix64((seed * 1000003 + i) & M64))
        user = max(1, lround(200.0 * math.exp(0.8 * r.normal())))
        system = r.uniform() < 0.5
        prompt = min(960, user + 12 + (110 if system else 0))
        output = min(80, max(8, lround(40.0 * math.exp(0.5 * r.normal()))))
        out.append((prompt, output))
    return out


def read_trace(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            p, o = int(d["prompt_tokens"]), int(d["output_tokens"])
            if p < 1 or o < 1:
                raise ValueError(f"{path}:{n}: needs positive prompt_tokens and output_tokens")
            out.append((p, o))
    if not out:
        raise ValueError(f"{path}: no requests")
    return out


def prompt_token(k, j, vocab=VOCAB):
    return 3 + splitmix64(((k << 20) | j) & M64) % (vocab - 3)


def prompt_ids(k, n, vocab=VOCAB):
    return [prompt_token(k, j, vocab) for j in range(n)]


def level_plan(users, min_requests, per_user):
    """[(users, requests, first request number k0)] in order: one cursor over all levels."""
    plan, k = [], 0
    for n in users:
        count = max(min_requests, per_user * n)
        plan.append((n, count, k))
        k += count
    return plan


def linear_shapes(s):
    """(name, N, K) of one decoder layer's linear layers as gyre runs them (fused qkv and gate_up)."""
    H, I = s["hidden"], s["intermediate"]
    d = H // s["heads"]
    return [("qkv", (s["heads"] + 2 * s["kv_heads"]) * d, H), ("o", H, s["heads"] * d),
            ("gate_up", 2 * I, H), ("down", H, I)]


def summary_stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None, None, None
    v.sort()

    def pct(q):
        pos = q * (len(v) - 1)
        lo = int(math.floor(pos))
        hi = min(len(v) - 1, lo + 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)
    return statistics.fmean(v), pct(0.5), pct(0.99)


# --- GPU phases ---

def time_cuda(torch, fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times)


def phase_matmul(torch, s, ms, reps):
    out = dict(dtype="float16", op="torch.matmul(A[M,K], W[N,K].t())", reps=reps, timing="CUDA events, median",
               by_tokens={})
    g = torch.Generator(device="cuda").manual_seed(1234)
    for M in ms:
        rows, flops_sum, ms_sum = [], 0.0, 0.0
        for name, N, K in linear_shapes(s):
            A = torch.randn((M, K), generator=g, device="cuda", dtype=torch.float16)
            W = torch.randn((N, K), generator=g, device="cuda", dtype=torch.float16)
            med, best = time_cuda(torch, lambda: torch.matmul(A, W.t()), reps)
            flops = 2.0 * M * N * K
            rows.append(dict(name=name, M=M, N=N, K=K, median_ms=med, min_ms=best, tflops=flops / (med * 1e-3) / 1e12))
            flops_sum += flops
            ms_sum += med
            del A, W
        out["by_tokens"][str(M)] = dict(shapes=rows, layer_flops=flops_sum, layer_ms=ms_sum,
                                        tflops=flops_sum / (ms_sum * 1e-3) / 1e12)
        print(f"torch.matmul M={M}: {flops_sum / (ms_sum * 1e-3) / 1e12:.1f} TFLOP/s over one layer's linear shapes",
              flush=True)
    n = 8192
    A = torch.randn((n, n), generator=g, device="cuda", dtype=torch.float16)
    B = torch.randn((n, n), generator=g, device="cuda", dtype=torch.float16)
    med, _ = time_cuda(torch, lambda: torch.matmul(A, B), 10)
    out["peak_8192_tflops"] = 2.0 * n ** 3 / (med * 1e-3) / 1e12
    print(f"torch.matmul 8192^3: {out['peak_8192_tflops']:.1f} TFLOP/s", flush=True)
    del A, B
    torch.cuda.empty_cache()
    return out


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


def phase_generate(torch, model, prompt_len=512, new_tokens=64):
    ids = torch.tensor([prompt_ids(1 << 31, prompt_len)], device="cuda")
    mask = torch.ones_like(ids)

    def gen(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t, out.shape[1] - prompt_len

    gen(4)  # warm-up
    t1 = min(gen(1)[0] for _ in range(2))
    tn, got = gen(new_tokens + 1)
    tn2, _ = gen(new_tokens + 1)
    tn = min(tn, tn2)
    ms = (tn - t1) / new_tokens * 1e3
    print(f"generate batch 1, prompt {prompt_len}: {ms:.2f} ms/token = {1e3 / ms:.1f} tok/s", flush=True)
    return dict(batch=1, prompt_tokens=prompt_len, new_tokens=new_tokens, generated=int(got),
                attn_implementation="sdpa", cache="default (dynamic)", first_token_s=t1, total_s=tn,
                decode_ms_per_token=ms, decode_tokens_per_s=1e3 / ms)


def filter_kwargs(fn, kwargs, extra=()):
    """The kwargs that fn names as parameters (and those in `extra`, which it takes through **kwargs):
    an unknown name never reaches a **kwargs that would reject or misread it."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in params or k in extra}
    return kept, [k for k in kwargs if k not in kept]


def describe(obj):
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        return {f.name: repr(getattr(obj, f.name, None)) for f in dataclasses.fields(obj)}
    return {k: repr(v) for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else repr(obj)


def import_cb_config_class(transformers):
    """ContinuousBatchingConfig (transformers >= 5.3), wherever this version exports it; None before."""
    for where in ("transformers.generation", "transformers", "transformers.generation.configuration_utils"):
        try:
            mod = __import__(where, fromlist=["ContinuousBatchingConfig"])
            cls = getattr(mod, "ContinuousBatchingConfig", None)
            if cls is not None:
                return cls, where
        except Exception:
            continue
    return None, None


class Workload:
    def __init__(self, torch, model, trace, args, report):
        self.torch, self.model, self.trace, self.args, self.report = torch, model, trace, args, report
        self.manager = None
        self.started = False
        self.gen = self.cbc = None
        self.add_params = {}
        self.info = report.setdefault("workload", {})

    def configs(self, use_cuda_graph):
        """(GenerationConfig, ContinuousBatchingConfig or None) for one try, recording what was set."""
        import transformers
        from transformers import GenerationConfig
        info = self.info
        gen = GenerationConfig(max_new_tokens=80, do_sample=False, pad_token_id=0, bos_token_id=1)
        gen.eos_token_id = None  # init_continuous_batching turns None into -1: EOS never stops a request
        cb = dict(use_cuda_graph=use_cuda_graph)
        if self.args.max_batch_tokens:
            cb["max_batch_tokens"] = self.args.max_batch_tokens
        ContinuousBatchingConfig, where = import_cb_config_class(transformers)
        cbc = None
        if ContinuousBatchingConfig is not None:
            info["continuous_batching_config_class"] = f"{where}.ContinuousBatchingConfig"
            if dataclasses.is_dataclass(ContinuousBatchingConfig):  # fields, init or not
                names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
                kept = {k: v for k, v in cb.items() if k in names}
                dropped = [k for k in cb if k not in names]
            else:
                kept, dropped = filter_kwargs(ContinuousBatchingConfig, cb)
            cbc = ContinuousBatchingConfig(**kept)
            info["continuous_batching_config_set"] = {k: repr(v) for k, v in kept.items()}
            if dropped:
                info["continuous_batching_config_unknown"] = dropped
        else:  # transformers < 5.3: the settings were GenerationConfig attributes
            for k, v in cb.items():
                setattr(gen, k, v)
            info["generation_config_set"] = {k: repr(v) for k, v in cb.items()}
        return gen, cbc

    def ensure_paged_attention(self):
        """The manager of transformers 5 switches the model to "paged|<impl>" itself; older versions
        needed the paged name set by hand ("sdpa_paged" in 4.5x). Records what the model runs."""
        cfg = self.model.config
        now = getattr(cfg, "_attn_implementation", None) or ""
        if "paged" in now:
            return
        setter = getattr(self.model, "set_attn_implementation", None)
        for name in ("paged|sdpa", "sdpa_paged"):
            try:
                if setter is not None:
                    setter(name)
                else:
                    cfg._attn_implementation = name
                self.info["attn_implementation_set"] = name
                return
            except Exception as e:
                self.info.setdefault("attn_implementation_set_errors", []).append(f"{name}: {e!r}"[:300])

    def start(self):
        """Makes the manager and captures its CUDA graphs (warmup), CUDA graphs on; if that fails, once
        more with CUDA graphs off; if that fails too, generate_batch per level. The manager's thread
        starts with the first requests (run_level), so an async first batch never finds an empty queue."""
        import transformers
        info = self.info
        info["transformers"] = transformers.__version__
        init = getattr(self.model, "init_continuous_batching", None)
        tries = [not self.args.no_cuda_graph] + ([False] if not self.args.no_cuda_graph else [])
        for use_graph in tries:
            self.gen, self.cbc = self.configs(use_graph)
            if init is None:
                break
            try:
                self.ensure_paged_attention()
                hints = None
                try:
                    from transformers.generation.continuous_batching.utils import WorkloadHints
                    hints = WorkloadHints(max_prompt_length=max(p for p, _ in self.trace),
                                          max_generated_length=max(o for _, o in self.trace))
                except Exception:  # not in this version
                    pass
                kwargs, _ = filter_kwargs(init, dict(generation_config=self.gen, continuous_batching_config=self.cbc,
                                                     workload_hints=hints))
                kwargs = {k: v for k, v in kwargs.items() if v is not None}
                info["init_continuous_batching_kwargs"] = sorted(kwargs)
                manager = init(**kwargs)
                if hasattr(manager, "warmup"):
                    t = time.perf_counter()
                    manager.warmup()
                    info["warmup_s"] = time.perf_counter() - t
                    print(f"transformers continuous batching: warm-up (CUDA graph capture) {info['warmup_s']:.1f} s",
                          flush=True)
                else:
                    info["warmup"] = "no ContinuousBatchingManager.warmup in this version"
                self.manager = manager
                self.add_params = inspect.signature(manager.add_request).parameters
                info["cuda_graph"] = use_graph
                info["mode"] = ("closed loop through model.init_continuous_batching() -> ContinuousBatchingManager "
                                "(what generate_batch wraps), add_request per request with its own max_new_tokens")
                break
            except Exception as e:
                info.setdefault("manager_errors", []).append(
                    f"use_cuda_graph={use_graph}: " + "".join(traceback.format_exception_only(type(e), e)).strip()[-1500:])
                print(f"hf_peer: continuous batching manager (use_cuda_graph={use_graph}) failed: {e!r}",
                      file=sys.stderr, flush=True)
                manager = self.manager = None
            # Here, after the except clause has released the traceback (whose frames hold the failed
            # manager): free its paged cache, which sizes itself from free GPU memory, before the next try.
            gc.collect()
            try:
                self.torch.cuda.empty_cache()
            except Exception:
                pass
        if self.manager is None:
            info["mode"] = ("generate_batch per level (no usable init_continuous_batching in this version; see "
                            "manager_errors)")
        info["attn_implementation"] = getattr(self.model.config, "_attn_implementation", None)

    def ensure_started(self):
        if self.started or self.manager is None:
            return
        self.manager.start()
        self.started = True
        self.info["resolved_continuous_batching_config"] = describe(
            getattr(self.manager, "continuous_batching_config", None))
        self.info["attn_implementation"] = getattr(self.model.config, "_attn_implementation", None)

    def stop(self):
        if self.manager is not None and self.started:
            try:
                self.manager.stop(block=True, timeout=10)
            except Exception as e:  # the numbers are already saved
                self.info["stop_error"] = repr(e)
        destroy = getattr(self.model, "destroy_cached_continuous_batching_manager", None)
        if destroy is not None and self.manager is None:
            try:
                destroy()
            except Exception:
                pass

    def run_level(self, users, count, k0, fixed_output=None, deadline=None):
        if self.manager is None:
            return self.run_level_generate_batch(users, count, k0, fixed_output)
        from time import perf_counter
        m, trace = self.manager, self.trace
        pending = {}
        state = dict(issued=0)
        lat, ttft, tpot = [], [], []
        res = dict(users=users, requests=count, completed=0, errors=0, wrong_length=0, prompt_tokens=0,
                   output_tokens=0)
        prompts = [prompt_ids(k0 + i, trace[(k0 + i) % len(trace)][0]) for i in range(count)]  # before the clock

        def submit():
            i = state["issued"]
            k = k0 + i
            p, o = trace[k % len(trace)]
            o = fixed_output or o
            rid = f"r{k}"
            kw = dict(input_ids=prompts[i], request_id=rid, max_new_tokens=o)
            if "record_timestamps" in self.add_params:
                kw["record_timestamps"] = True
            if "eos_token_id" in self.add_params:
                kw["eos_token_id"] = -1
            if "streaming" in self.add_params:
                kw["streaming"] = False
            pending[rid] = (perf_counter(), o)
            res["prompt_tokens"] += p
            state["issued"] += 1
            m.add_request(**kw)

        t0 = perf_counter()
        last_end = t0
        for _ in range(min(users, count)):
            submit()
        self.ensure_started()
        done, last_progress = 0, perf_counter()
        while done < count:
            r = m.get_result(timeout=1.0)
            now = perf_counter()
            if r is None:
                if hasattr(m, "is_running") and not m.is_running():
                    res["first_error"] = "the generation thread stopped"
                    break
                if deadline is not None and time.time() > deadline:
                    res["first_error"] = f"time limit: partial level ({done} of {count} requests)"
                    res["partial"] = True
                    break
                if now - last_progress > 120:
                    res["first_error"] = "no request finished for 120 s"
                    break
                continue
            rid = getattr(r, "request_id", None)
            if rid not in pending:
                continue
            failed = getattr(r, "error", None) is not None
            if not failed and hasattr(r, "is_finished") and not r.is_finished():
                continue  # a streamed partial output
            t_sub, expected = pending.pop(rid)
            done += 1
            last_progress = now
            if failed:
                res["errors"] += 1
                res.setdefault("first_error", str(r.error)[:500])
            else:
                created = getattr(r, "created_time", None) or t_sub
                ts = getattr(r, "timestamps", None) or []
                span = getattr(r, "lifespan", None)
                end = span[1] if span and span[1] and span[1] > 0 else (ts[-1] if ts else now)
                n = len(getattr(r, "generated_tokens", []) or [])
                lat.append(end - created)
                if ts:
                    ttft.append(ts[0] - created)
                    if n > 1:
                        tpot.append((ts[-1] - ts[0]) / (n - 1))
                res["completed"] += 1
                res["output_tokens"] += n
                res["wrong_length"] += int(n != expected)
                last_end = max(last_end, end)
            if deadline is not None and time.time() > deadline and done < count:
                res["first_error"] = f"time limit: partial level ({done} of {count} requests)"
                res["partial"] = True
                break
            if state["issued"] < count:
                submit()
        if pending and hasattr(m, "cancel_request"):  # left behind by a break: do not let them run on
            for rid in list(pending):
                try:
                    m.cancel_request(rid)
                except Exception:
                    pass
        wall = max(last_end, t0 + 1e-9) - t0
        res["wall_s"] = wall
        res["requests_per_s"] = res["completed"] / wall
        res["output_tokens_per_s"] = res["output_tokens"] / wall
        res["mean_latency_s"], res["p50_latency_s"], res["p99_latency_s"] = summary_stats(lat)
        res["mean_ttft_s"], res["p50_ttft_s"], _ = summary_stats(ttft)
        res["mean_tpot_s"], _, _ = summary_stats(tpot)
        res["timestamps"] = "manager's own (record_timestamps)" if ttft else "none: TTFT/TPOT unavailable"
        return res

    def run_level_generate_batch(self, users, count, k0, fixed_output=None):
        """Fallback: the whole level at once through generate_batch, one max_new_tokens (the mean)."""
        gb = getattr(self.model, "generate_batch", None)
        if gb is None:
            raise RuntimeError("this transformers has neither init_continuous_batching nor generate_batch")
        reqs = [self.trace[(k0 + i) % len(self.trace)] for i in range(count)]
        out_len = fixed_output or max(1, lround(statistics.fmean(o for _, o in reqs)))
        inputs = [prompt_ids(k0 + i, p) for i, (p, _) in enumerate(reqs)]
        kwargs, _ = filter_kwargs(gb, dict(
            inputs=inputs, generation_config=self.gen, continuous_batching_config=self.cbc, progress_bar=False,
            record_timestamps=True, persistent_manager=True, max_new_tokens=out_len), extra=("max_new_tokens",))
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self.info["generate_batch_kwargs"] = sorted(kwargs)
        t0 = time.perf_counter()
        results = gb(**kwargs)
        wall = time.perf_counter() - t0
        outs = list(results.values()) if isinstance(results, dict) else list(results or [])
        n_out = sum(len(getattr(r, "generated_tokens", []) or []) for r in outs)
        lat, ttft = [], []
        for r in outs:  # from the manager's own stamps where this version has them
            created, ts, span = getattr(r, "created_time", None), getattr(r, "timestamps", None) or [], getattr(r, "lifespan", None)
            end = span[1] if span and span[1] and span[1] > 0 else (ts[-1] if ts else None)
            if created is not None and end is not None:
                lat.append(end - created)
            if created is not None and ts:
                ttft.append(ts[0] - created)
        mean_lat = summary_stats(lat)[0]
        return dict(users=users, requests=count, completed=len(outs), errors=count - len(outs),
                    mode=f"generate_batch: all {count} at once, max_new_tokens {out_len} each (not a closed loop)",
                    wall_s=wall, requests_per_s=len(outs) / wall, output_tokens_per_s=n_out / wall,
                    output_tokens=n_out, prompt_tokens=sum(p for p, _ in reqs),
                    mean_latency_s=mean_lat if mean_lat is not None else wall, mean_ttft_s=summary_stats(ttft)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="llama-2-7b", choices=sorted(SHAPES))
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--trace", default="")
    ap.add_argument("--trace-seed", type=int, default=20261201)
    ap.add_argument("--trace-size", type=int, default=512)
    ap.add_argument("--users", default="1,4,16,32,64")
    ap.add_argument("--requests-per-user", type=int, default=2)
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--phases", default="matmul,generate,workload")
    ap.add_argument("--matmul-tokens", default="512,2048")
    ap.add_argument("--matmul-reps", type=int, default=20)
    ap.add_argument("--time-limit-s", type=float, default=0)
    ap.add_argument("--max-batch-tokens", type=int, default=0, help="ContinuousBatchingConfig.max_batch_tokens "
                    "(default: transformers' own choice)")
    ap.add_argument("--no-cuda-graph", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: print the plan and the trace summary")
    args = ap.parse_args()
    start = time.time()
    deadline = start + args.time_limit_s if args.time_limit_s > 0 else None
    phases = set(args.phases.split(","))
    users = [int(x) for x in args.users.split(",") if x]
    report = dict(peer="transformers", tool="hf_peer.py", shape=args.shape, layers=args.layers or SHAPES[args.shape]["layers"],
                  dtype="float16", weights="random N(0, 0.02) of its own (norms 1), made on the GPU",
                  users=users, requests_per_user=args.requests_per_user, min_requests=args.min_requests)
    failures = []

    def save():
        report["seconds"] = time.time() - start
        report["ok"] = not failures
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, args.json)

    def fail(phase, e):
        failures.append(phase)
        report[phase + "_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:]
        report.setdefault("tracebacks", {})[phase] = traceback.format_exc()[-4000:]
        print(f"hf_peer: {phase}: {report[phase + '_error']}", file=sys.stderr, flush=True)
        save()

    try:
        trace = read_trace(args.trace) if args.trace else generate_trace(args.trace_seed, args.trace_size)
        report["trace"] = args.trace or f"built-in generator, seed {args.trace_seed}"
    except Exception as e:
        fail("trace", e)
        return 1
    report["trace_requests"] = len(trace)
    report["trace_mean_prompt_tokens"] = statistics.fmean(p for p, _ in trace)
    report["trace_mean_output_tokens"] = statistics.fmean(o for _, o in trace)
    plan = level_plan(users, args.min_requests, args.requests_per_user)
    if args.dry_run:
        print(json.dumps(dict(plan=plan, first_prompt_ids=prompt_ids(0, 8), **{k: report[k] for k in (
            "trace", "trace_requests", "trace_mean_prompt_tokens", "trace_mean_output_tokens")}), indent=1))
        return 0

    try:
        import torch
        import transformers
        report["transformers"] = transformers.__version__
        report["torch"] = torch.__version__
        report["cuda"] = torch.version.cuda
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        report["gpu"] = torch.cuda.get_device_name(0)
    except Exception as e:
        fail("setup", e)
        return 1
    save()
    print(f"hf_peer: transformers {report['transformers']}, torch {report['torch']}, {report['gpu']}", flush=True)
    s = SHAPES[args.shape]
    if args.layers:
        s = dict(s, layers=args.layers)

    def out_of_time():
        return deadline is not None and time.time() > deadline

    if "matmul" in phases:
        try:
            report["matmul"] = phase_matmul(torch, s, [int(x) for x in args.matmul_tokens.split(",")], args.matmul_reps)
        except Exception as e:
            fail("matmul", e)
        save()

    model = None
    if ("generate" in phases or "workload" in phases) and not out_of_time():
        try:
            t = time.time()
            made = report.setdefault("model", {})
            model, cfg = make_model(torch, args.shape, args.layers, args.seed, made)
            w = next(model.parameters())
            made.update(class_name=type(model).__name__, layers=cfg.num_hidden_layers, create_s=time.time() - t,
                        parameters=sum(p.numel() for p in model.parameters()),
                        first_param_std=float(w.float().std()), device=str(w.device), dtype=str(w.dtype),
                        attn_implementation=getattr(model.config, "_attn_implementation", None))
            print(f"hf_peer: {type(model).__name__} made in {time.time() - t:.1f} s", flush=True)
        except Exception as e:
            fail("model", e)
        save()

    if model is not None and "generate" in phases and not out_of_time():
        try:
            report["generate"] = phase_generate(torch, model)
        except Exception as e:
            fail("generate", e)
        save()

    if model is not None and "workload" in phases:
        wl = Workload(torch, model, trace, args, report)
        try:
            wl.start()
            save()
            warm = min(8, max(users))
            try:
                report["workload"]["warmup"] = wl.run_level(warm, warm, 1 << 30, fixed_output=8, deadline=deadline)
            except Exception as e:  # the levels say whether it was more than the warm-up
                report["workload"]["warmup"] = dict(error="".join(traceback.format_exception_only(type(e), e)).strip()[-1000:])
            save()
            levels = report["workload"].setdefault("levels", [])
            print(f"{'users':<6} {'req/s':>9} {'out tok/s':>12} {'latency s':>10} {'TTFT s':>10} {'TPOT ms':>10} {'errors':>7}",
                  flush=True)

            def f(x, scale=1.0, fmt="10.3f"):
                return format(x * scale, fmt) if isinstance(x, (int, float)) else format("-", ">10")
            for n, count, k0 in plan:
                if out_of_time():
                    levels.append(dict(users=n, skipped="time limit"))
                    save()
                    continue
                try:
                    lv = wl.run_level(n, count, k0, deadline=deadline)
                except Exception as e:  # one level's failure does not lose the others
                    lv = dict(users=n, requests=count, completed=0, errors=count,
                              first_error="".join(traceback.format_exception_only(type(e), e)).strip()[-1000:])
                levels.append(lv)
                save()
                print(f"{n:<6} {f(lv.get('requests_per_s'), 1.0, '9.2f')} {f(lv.get('output_tokens_per_s'), 1.0, '12.1f')} "
                      f"{f(lv.get('mean_latency_s'))} {f(lv.get('mean_ttft_s'))} {f(lv.get('mean_tpot_s'), 1e3, '10.2f')} "
                      f"{lv.get('errors', 0):>7}", flush=True)
                if lv.get("errors") or lv.get("first_error"):
                    failures.append(f"workload users={n}")
        except Exception as e:
            fail("workload", e)
        finally:
            wl.stop()
        save()
    save()
    print(f"hf_peer: done in {time.time() - start:.1f} s; {len(failures)} failure(s); JSON: {args.json}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: a continuous-batching thread that did not stop in time must not hold the process
    # (and the device-check's time budget) at interpreter exit; the JSON is already written.
    os._exit(rc)
