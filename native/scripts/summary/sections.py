"""The summary's sections, each from gyre_bench's runs (by label) and the peer's JSON: decode,
prefill, KV capacity, the workload side by side, the targets, and what failed."""
from summary.figures import TARGETS, num, ratio


def phase(run, name):
    return (run.get("phases") or {}).get(name)


def phase_rows(runs, name):
    """(row, the fields its summary row starts with) for every row of phase `name` in every run."""
    for label, r in runs.items():
        model = r.get("model") or {}
        for row in phase(r, name) or []:
            if isinstance(row, dict):
                yield row, dict(run=label, shape=model.get("shape"), layers=model.get("layers"),
                                quantization=model.get("quantization"), gemm=r.get("gemm"))


def decode_rows(runs):
    decode = []
    for row, d in phase_rows(runs, "decode"):
        d.update(batch=row.get("batch"), context=row.get("context"))
        if row.get("skipped"):
            d["skipped"] = row["skipped"]
        else:
            d.update(step_ms=row.get("median_ms"), tokens_per_s=row.get("tokens_per_s"), floor_ms=row.get("floor_ms"),
                     achieved_GBps=row.get("achieved_GBps"), pct_of_copy_bandwidth=row.get("pct_of_floor"),
                     weight_bytes=row.get("weight_bytes"), kv_bytes_read=row.get("kv_bytes_read"))
        decode.append(d)
    return decode


def prefill_rows(runs, torch_tflops):
    prefill = []
    for row, d in phase_rows(runs, "prefill"):
        t = row.get("tokens")
        d.update(tokens=t)
        if row.get("skipped"):
            d["skipped"] = row["skipped"]
        else:
            ours = num(row.get("linear_tflops_achieved"))
            ref = torch_tflops.get(str(t))
            d.update(ms=row.get("median_ms"), tokens_per_s=row.get("tokens_per_s"), linear_flops=row.get("linear_flops"),
                     attention_flops=row.get("attention_flops"), linear_tflops=ours, torch_matmul_tflops=ref,
                     pct_of_torch_matmul=100.0 * ours / ref if ours and ref else None)
        prefill.append(d)
    return prefill


def kv_rows(runs):
    kv = []
    for label, r in runs.items():
        k = phase(r, "kv")
        if isinstance(k, dict) and "blocks" in k:
            kv.append(dict(run=label, shape=(r.get("model") or {}).get("shape"), quantization=(r.get("model") or {}).get("quantization"),
                           **{x: k.get(x) for x in ("gpu_memory_budget", "tokens", "concurrent_conversations",
                                                    "conversation_tokens", "kv_bytes")}))
    return kv


def workload_rows(runs, peer):
    """The levels side by side, and gyre's levels by N (of the first run with a workload)."""
    gyre_levels = {}
    gyre_workload_run = None
    for label, r in runs.items():
        w = phase(r, "workload")
        if isinstance(w, dict) and w.get("levels"):
            gyre_workload_run = gyre_workload_run or label
            if label == gyre_workload_run:
                for lv in w["levels"]:
                    gyre_levels[lv.get("users")] = lv
    peer_levels = {lv.get("users"): lv for lv in ((peer or {}).get("workload") or {}).get("levels") or []}
    workload = []
    for n in sorted(set(gyre_levels) | set(peer_levels), key=lambda x: (x is None, x)):
        g, p = gyre_levels.get(n, {}), peer_levels.get(n, {})
        keep = ("requests", "completed", "errors", "wrong_length", "requests_per_s", "output_tokens_per_s", "mean_latency_s",
                "p50_latency_s", "p99_latency_s", "mean_ttft_s", "mean_tpot_s", "wall_s", "skipped", "first_error", "partial", "mode")
        tr = ratio(g.get("requests_per_s"), p.get("requests_per_s"))
        lr = ratio(g.get("mean_latency_s"), p.get("mean_latency_s"))
        workload.append(dict(users=n, gyre={k: g[k] for k in keep if k in g}, transformers={k: p[k] for k in keep if k in p},
                             throughput_ratio=tr, latency_ratio=lr,
                             ttft_ratio=ratio(g.get("mean_ttft_s"), p.get("mean_ttft_s")),
                             tpot_ratio=ratio(g.get("mean_tpot_s"), p.get("mean_tpot_s")),
                             target_met=(tr is not None and lr is not None and tr >= TARGETS["workload_ratio"] and lr <= 1.0)
                             if tr is not None and lr is not None else None))
    return workload, gyre_levels


def main_decode_rows(decode):
    """Llama-2-7B, all 32 layers, float weights: the rows the decode target and the projection use."""
    return [d for d in decode if d.get("shape") == "llama-2-7b" and d.get("quantization") == "none"
            and d.get("layers") == 32 and num(d.get("pct_of_copy_bandwidth")) is not None]


def main_prefill_rows(prefill):
    """Llama-2-7B prefill rows measured against torch.matmul: the prefill target's and the projection's."""
    return [d for d in prefill if d.get("shape") == "llama-2-7b" and num(d.get("pct_of_torch_matmul")) is not None]


def target_checks(main_decode, pf, workload):
    b1 = [d for d in main_decode if d.get("batch") == 1]
    b1_pct = max((d["pct_of_copy_bandwidth"] for d in b1), default=None)
    pf_by_tokens = {}
    for d in pf:  # the best GEMM path per chunk size
        pf_by_tokens[d["tokens"]] = max(pf_by_tokens.get(d["tokens"], 0.0), d["pct_of_torch_matmul"])
    targets = {
        "decode_b1_7b_pct_of_copy_bandwidth_>=85": dict(value=b1_pct, met=b1_pct >= TARGETS["decode_b1_pct"] if b1_pct is not None else None),
        "prefill_7b_pct_of_torch_matmul_>=70": dict(value=pf_by_tokens or None,
                                                     met=all(v >= TARGETS["prefill_pct"] for v in pf_by_tokens.values()) if pf_by_tokens else None),
        "workload_>=2x_transformers_at_<=latency_every_N": dict(
            value={str(w["users"]): w["throughput_ratio"] for w in workload},
            # False as soon as one level misses; True only when every level was measured on both sides and met
            met=(False if any(w["target_met"] is False for w in workload) else
                 True if workload and all(w["target_met"] for w in workload) else None)),
    }
    return targets


def collect_errors(runs, peer, gyre_levels):
    errors = {}
    for label, r in runs.items():
        for k, v in (r.get("phases") or {}).items():
            if k.endswith("_error"):
                errors[f"gyre {label} {k[:-6]}"] = (v or {}).get("error") if isinstance(v, dict) else v
        if r.get("error"):
            errors[f"gyre {label}"] = r["error"]
    for k, v in (peer or {}).items():
        if k.endswith("_error"):
            errors[f"transformers {k[:-6]}"] = v
    for lv in ((peer or {}).get("workload") or {}).get("levels") or []:
        if lv.get("first_error"):
            errors[f"transformers workload N={lv.get('users')}"] = lv["first_error"]
    for n, lv in gyre_levels.items():
        if lv.get("first_error"):
            errors[f"gyre workload N={n}"] = lv["first_error"]
    return errors


def peer_summary(peer):
    return dict(name="transformers", version=(peer or {}).get("transformers"), torch=(peer or {}).get("torch"),
                api=((peer or {}).get("workload") or {}).get("mode"),
                attn_implementation=((peer or {}).get("workload") or {}).get("attn_implementation"),
                continuous_batching_config=((peer or {}).get("workload") or {}).get("continuous_batching_config_set"),
                warmup_s=((peer or {}).get("workload") or {}).get("warmup_s"),
                cuda_graph=((peer or {}).get("workload") or {}).get("cuda_graph"),
                manager_errors=((peer or {}).get("workload") or {}).get("manager_errors"),
                model=(peer or {}).get("model"),
                generate_batch1=(peer or {}).get("generate"),
                errors={k: v for k, v in (peer or {}).items() if k.endswith("_error")} or None)
