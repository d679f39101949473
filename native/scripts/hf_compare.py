#!/usr/bin/env python3
"""Fidelity of the CUDA backend against Hugging Face transformers, on a GPU machine.

Makes 2-layer models with the dimensions of Llama-2-7B and of Mistral-7B (random weights,
stored f16 and bf16), runs transformers on them (the stored dtype, and float32 as a
higher-precision reference), runs gyre_logits_dump on the same prompts, and judges both against the float32 reference
(Gyre keeps a float32 residual stream; HF's f16/bf16 model rounds more, so HF in the stored
dtype is no reference for Gyre):
  logits  worst per-position ||x - fp32|| / ||fp32|| of Gyre (ours) and of HF in the stored dtype
          (hf); ok when ours <= max(THRESHOLD[dtype], K_HF x hf): no worse than HF's own rounding
          (so no spurious failure where the dtype itself is coarse) and never above the threshold
          where HF is exact (so no error hides behind a coarse HF)
  greedy  vLLM's check_logprobs_close against the fp32 greedy tokens: equal until the first
          divergence, where each side's token must be in the other's top 5 (the rest is not compared)
Random N(0, 0.02) weights give nearly flat logits, so the embedding is N(0, 1) and lm_head
N(0, 0.05): logits then have a std near 3 and top-1 margins well above the rounding error.
The Mistral-shaped model's sliding window is 128 (not 4096) so that the prompts cross it.

usage: hf_compare.py --tool BIN/gyre_logits_dump [--tool BIN2/gyre_logits_dump] --work DIR --json OUT.json
                     [--time-limit-s T]
The JSON is rewritten after every row; with --time-limit-s, the (model, dtype) pairs that would
start past the limit are reported as skipped. Exit status: 0 all ran and passed, 1 a row failed,
3 none failed but some were skipped (time).
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time

THRESHOLD = {"f16": 5e-3, "bf16": 2e-2}
K_HF = 2.0  # ours may be off the fp32 reference by up to K_HF x HF's own error in the same dtype
MODELS = {
    "llama2-7b-2l": dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096,
                         intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                         max_position_embeddings=4096, rope_theta=10000.0),
    "mistral-7b-2l": dict(architectures=["MistralForCausalLM"], model_type="mistral", hidden_size=4096,
                          intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                          max_position_embeddings=32768, rope_theta=10000.0, sliding_window=128),
}
PROMPT_LENS = [7, 64, 300]
GREEDY = 16


# --- safetensors through numpy (the prompts and the tool's output; works without torch) ---

def write_safetensors(path, tensors):
    import numpy as np
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[arr.dtype]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    np_dtype = {"F32": np.float32, "I64": np.int64, "I32": np.int32, "F16": np.float16}
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np_dtype[h["dtype"]]).reshape(h["shape"])
    return out


# --- judging (pure; testable without a GPU: test/scripts/hf_compare.test.ts) ---

def rel_errors(ours, ref):
    """Per position ||ours - ref|| / ||ref||; rows [n, vocab]."""
    import numpy as np
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    err = np.linalg.norm(ours - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)
    err[~np.isfinite(ours).all(axis=-1)] = np.inf
    return err


def judge_logits(ours_err, hf_err, threshold, k=K_HF):
    """(ok, limit): ours_err, HF's hf_err, both against fp32; ok when ours_err <= max(threshold, k x hf_err)."""
    limit = max(threshold, k * hf_err) if math.isfinite(hf_err) else threshold
    return bool(math.isfinite(ours_err) and ours_err <= limit), limit


def summary_status(rows):
    """Exit status for the rows: 1 any failed, 3 some skipped (none failed), 0 all ran and passed; 1 if none."""
    if not rows or any(not r.get("ok") and not r.get("skipped") for r in rows):
        return 1
    return 3 if any(r.get("skipped") for r in rows) else 0


def check_logprobs_close(ours, ours_top, ref, ref_top):
    """vLLM's rule on greedy tokens. Returns (ok, index of first divergence or None)."""
    for i, (a, b) in enumerate(zip(ours, ref)):
        if a != b:
            return (int(a) in set(int(x) for x in ref_top[i]) and int(b) in set(int(x) for x in ours_top[i])), i
    return True, None


# --- the GPU part ---

def make_model(torch, folder, name, dtype_name, seed):
    from safetensors.torch import save_file
    cfg = dict(MODELS[name], num_hidden_layers=2, vocab_size=32000, rms_norm_eps=1e-5, hidden_act="silu",
               bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, rope_scaling=None,
               attention_bias=False, torch_dtype={"f16": "float16", "bf16": "bfloat16"}[dtype_name])
    cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg["rope_theta"]}  # transformers 5's name
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    dt = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    g = torch.Generator(device="cuda").manual_seed(seed)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    d, nh, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def rnd(shape, std):
        return (torch.randn(shape, generator=g, device="cuda") * std).to(dt).cpu()

    def norm():
        return (1 + 0.1 * torch.randn((H,), generator=g, device="cuda")).to(dt).cpu()

    t = {"model.embed_tokens.weight": rnd((V, H), 1.0), "lm_head.weight": rnd((V, H), 0.05), "model.norm.weight": norm()}
    for l in range(2):
        p = f"model.layers.{l}."
        t[p + "self_attn.q_proj.weight"] = rnd((nh * d, H), 0.02)
        t[p + "self_attn.k_proj.weight"] = rnd((nkv * d, H), 0.02)
        t[p + "self_attn.v_proj.weight"] = rnd((nkv * d, H), 0.02)
        t[p + "self_attn.o_proj.weight"] = rnd((H, nh * d), 0.02)
        t[p + "mlp.gate_proj.weight"] = rnd((I, H), 0.02)
        t[p + "mlp.up_proj.weight"] = rnd((I, H), 0.02)
        t[p + "mlp.down_proj.weight"] = rnd((H, I), 0.02)
        t[p + "input_layernorm.weight"] = norm()
        t[p + "post_attention_layernorm.weight"] = norm()
    save_file(t, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def load_hf(torch, folder, dtype):
    from transformers import AutoModelForCausalLM
    try:
        m = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    except TypeError:  # older transformers
        m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype, attn_implementation="eager")
    return m.to("cuda").eval()


def hf_run(torch, model, prompts):
    """All-position logits (float32 numpy) and a greedy continuation with each step's top 5."""
    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], device="cuda")
            logits = model(x).logits[0].float()
            seq, greedy, tops = list(ids), [], []
            last = logits[-1]
            for _ in range(GREEDY):
                top = torch.topk(last, 5).indices.tolist()
                greedy.append(top[0])
                tops.append(top)
                seq.append(top[0])
                last = model(torch.tensor([seq], device="cuda")).logits[0, -1].float()
            out.append((logits.cpu().numpy(), greedy, tops))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", action="append", required=True, help="gyre_logits_dump binary (repeatable)")
    ap.add_argument("--work", default="/tmp/gyre-hf")
    ap.add_argument("--json", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--dtypes", default="f16,bf16")
    ap.add_argument("--time-limit-s", type=float, default=0, help="skip the pairs that would start past this (0: none)")
    args = ap.parse_args()
    start = time.time()
    import numpy as np
    import torch
    import transformers
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 32000, size=n).tolist() for n in PROMPT_LENS]
    os.makedirs(args.work, exist_ok=True)
    prompts_path = os.path.join(args.work, "prompts.safetensors")
    write_safetensors(prompts_path, {f"prompt_{k}.input_ids": np.array(p, dtype=np.int64) for k, p in enumerate(prompts)})
    rows = []

    def save():  # after every row: a run cut short keeps what it judged
        with open(args.json, "w") as f:
            json.dump(dict(torch=torch.__version__, transformers=transformers.__version__,
                           gpu=torch.cuda.get_device_name(0), prompt_lens=PROMPT_LENS, greedy=GREEDY, k_hf=K_HF,
                           seconds=round(time.time() - start, 1), rows=rows), f, indent=1)

    pair_s = 0.0  # the longest (model, dtype) pair so far: a pair starts only if one more fits
    for mi, name in enumerate(args.models.split(",")):
        for di, dtn in enumerate(args.dtypes.split(",")):
            left = args.time_limit_s - (time.time() - start) if args.time_limit_s else math.inf
            if left < pair_s:
                for tool in args.tool:
                    rows.append(dict(model=name, dtype=dtn, tool=tool, threshold=THRESHOLD[dtn], ok=False,
                                     skipped=f"time limit ({args.time_limit_s:.0f}s)"))
                save()
                continue
            folder = os.path.join(args.work, f"{name}-{dtn}")
            t0 = time.time()
            make_model(torch, folder, name, dtn, seed=100 * mi + di)
            dt = {"f16": torch.float16, "bf16": torch.bfloat16}[dtn]
            model = load_hf(torch, folder, dt)
            hf = hf_run(torch, model, prompts)
            model = model.float()  # the same weights in float32: the reference both sides are judged against
            hf32 = hf_run(torch, model, prompts)
            del model
            torch.cuda.empty_cache()
            for tool in args.tool:
                out_path = os.path.join(args.work, f"ours-{name}-{dtn}.safetensors")
                row = dict(model=name, dtype=dtn, tool=tool, threshold=THRESHOLD[dtn], seconds=None)
                try:
                    tool_s = max(10.0, left - (time.time() - t0)) if math.isfinite(left) else None
                    r = subprocess.run([tool, folder, prompts_path, out_path, "--backend", "cuda", "--greedy", str(GREEDY)],
                                       capture_output=True, text=True, timeout=tool_s)
                    failure = None if r.returncode == 0 else (r.stderr or r.stdout)[-2000:]
                except subprocess.TimeoutExpired:
                    failure = f"gyre_logits_dump: no result within {tool_s:.0f}s"
                if failure:
                    row.update(ok=False, error=failure)
                    rows.append(row)
                    save()
                    continue
                ours = read_safetensors(out_path)
                worst_ours, worst_hf, worst_vs_hf, greedy_ok, diverged = 0.0, 0.0, 0.0, True, []
                for k in range(len(prompts)):
                    p = f"prompt_{k}."
                    worst_ours = max(worst_ours, float(rel_errors(ours[p + "logits"], hf32[k][0]).max()))
                    worst_hf = max(worst_hf, float(rel_errors(hf[k][0], hf32[k][0]).max()))
                    worst_vs_hf = max(worst_vs_hf, float(rel_errors(ours[p + "logits"], hf[k][0]).max()))
                    ok, at = check_logprobs_close(ours[p + "greedy"].tolist(), ours[p + "greedy_top5"].tolist(),
                                                  hf32[k][1], hf32[k][2])
                    greedy_ok = greedy_ok and ok
                    diverged.append(at)
                logits_ok, limit = judge_logits(worst_ours, worst_hf, THRESHOLD[dtn])
                row.update(ours_vs_fp32=worst_ours, hf_vs_fp32=worst_hf, limit=limit, ours_vs_hf=worst_vs_hf,
                           greedy_ok=greedy_ok, greedy_divergence=diverged, seconds=round(time.time() - t0, 1),
                           ok=bool(logits_ok and greedy_ok))
                rows.append(row)
                save()
                print(json.dumps(row), flush=True)
            pair_s = max(pair_s, time.time() - t0)
    save()
    print(f"{'model':<15} {'dtype':<5} {'gemm':<9} {'ours/fp32':>9} {'HF/fp32':>9} {'limit':>9} {'greedy':>7}  result")
    for r in rows:
        gemm = "cublaslt" if "-lt" in r["tool"] else "mma"
        if "ours_vs_fp32" not in r:
            why = f"skipped: {r['skipped']}" if r.get("skipped") else "FAIL (tool)"
            print(f"{r['model']:<15} {r['dtype']:<5} {gemm:<9} {'-':>9} {'-':>9} {r['threshold']:>9.1e} {'-':>7}  {why}")
            continue
        print(f"{r['model']:<15} {r['dtype']:<5} {gemm:<9} {r['ours_vs_fp32']:>9.2e} {r['hf_vs_fp32']:>9.2e} "
              f"{r['limit']:>9.2e} {str(r['greedy_ok']):>7}  {'ok' if r['ok'] else 'FAIL'}")
    return summary_status(rows)


if __name__ == "__main__":
    sys.exit(main())
