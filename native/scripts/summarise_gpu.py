#!/usr/bin/env python3
"""Merges gyre_bench's and hf_peer.py's JSON into one result file and a plot (issue 9).

usage: summarise_gpu.py --gyre LABEL=FILE [--gyre LABEL=FILE ...] [--peer FILE] [--device-check FILE]
                        --out-dir DIR [--date YYYYMMDD] [--commit SHA] [--no-plot]
                        [--a10g-GBps 600] [--a10g-tflops 125]

Writes DIR/gpu-<date>.json (the GPU's name, the peer named "transformers" with its version, every
figure of every input under "raw", and the comparisons below) and DIR/gpu-<date>.png (skipped if
matplotlib cannot be imported), then prints a short table, last.

Comparisons:
  decode    step time against the floor (weight bytes + KV bytes read) / measured copy bandwidth:
            pct_of_floor = floor / time = achieved bytes/s as a % of the copy bandwidth.
  prefill   linear-layer FLOPs of the chunk / gyre's whole forward time, as a % of torch.matmul's
            fp16 rate on the same shapes (hf_peer.py, same run, same GPU). The whole forward
            includes attention, norms and host copies, so this understates the GEMMs' own rate.
  workload  per N users: gyre's requests/s over transformers' (target >= 2x) and mean latency
            ratio (target <= 1), TTFT and TPOT side by side.
  A10G      roofline projection (see bench/NOTES-cuda.md): decode scales by bytes over bandwidth,
            prefill by FLOPs over the tensor rate, each at the efficiency measured here.
"""
import argparse
import datetime as dt
import json
import math
import os
import sys

# Datasheet figures (dense fp16 tensor TFLOP/s, memory GB/s), matched on the name nvidia-smi and
# cudaGetDeviceProperties give; used only to carry this card's measured efficiency over to the A10G.
DATASHEET = [
    ("H200", 989.0, 4800.0),
    ("H100 NVL", 835.0, 3900.0),
    ("H100 PCIe", 756.0, 2000.0),
    ("H100", 989.0, 3350.0),  # SXM5 / "H100 80GB HBM3"
    ("A100-SXM4-80GB", 312.0, 2039.0),
    ("A100", 312.0, 1555.0),
    ("A10G", 125.0, 600.0),
    ("L4", 121.0, 300.0),
]
TARGETS = dict(decode_b1_pct=85.0, prefill_pct=70.0, workload_ratio=2.0, a10g_b1_tok_s=40.0, a10g_20users_tok_s=550.0)


def load(path):
    try:
        with open(path) as f:
            return json.load(f), None
    except Exception as e:  # missing or truncated: say so, keep going
        return None, f"{path}: {type(e).__name__}: {e}"


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def ratio(a, b):
    a, b = num(a), num(b)
    return a / b if a is not None and b not in (None, 0) else None


def datasheet(name):
    for key, tflops, gbps in DATASHEET:
        if name and key.lower() in name.lower():
            return dict(match=key, tflops_fp16_dense=tflops, GBps=gbps)
    return None


def interp(points, x):
    """Linear interpolation of y at x over [(x, y)] (sorted by x); None outside or without points."""
    pts = sorted((px, py) for px, py in points if num(py) is not None)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    for px, py in pts:
        if px == x:
            return py
    return None


def fmt(x, spec=".1f", none="-"):
    return format(x, spec) if num(x) is not None else none


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gyre", action="append", default=[], help="LABEL=FILE, a gyre_bench JSON (repeatable)")
    ap.add_argument("--peer", default="", help="hf_peer.py JSON")
    ap.add_argument("--device-check", default="", help="device-check.json (the correctness results)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--date", default=dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d"))
    ap.add_argument("--commit", default="")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--a10g-GBps", type=float, default=600.0)
    ap.add_argument("--a10g-tflops", type=float, default=125.0)
    args = ap.parse_args()
    try:
        return summarise(args)
    except Exception:  # a bug here must not lose the measurements: write them raw, say why
        import traceback
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        raw = dict(gyre={}, transformers=None)
        for item in args.gyre:
            label, _, path = item.partition("=")
            raw["gyre"][label] = load(path or label)[0]
        raw["transformers"] = load(args.peer)[0] if args.peer else None
        os.makedirs(args.out_dir, exist_ok=True)
        json_path = os.path.join(args.out_dir, f"gpu-{args.date}.json")
        with open(json_path, "w") as f:
            json.dump(dict(date=args.date, commit=args.commit or None, summary_error=tb[-4000:],
                           device_check=load(args.device_check)[0] if args.device_check else None, raw=raw), f, indent=1)
        print(f"summarise_gpu: the summary failed ({tb.strip().splitlines()[-1]}); wrote the raw inputs to {json_path}")
        return 1


def summarise(args):
    problems = []
    runs = {}
    for item in args.gyre:
        label, _, path = item.partition("=")
        if not path:
            label, path = os.path.splitext(os.path.basename(label))[0], label
        data, err = load(path)
        if err:
            problems.append(err)
        elif data is not None:
            runs[label] = data
    peer, err = load(args.peer) if args.peer else (None, None)
    if err:
        problems.append(err)
    devcheck, err = load(args.device_check) if args.device_check else (None, None)
    if err:
        problems.append(err)

    def phase(run, name):
        return (run.get("phases") or {}).get(name)

    # --- the GPU and the ceilings ---
    gpu = next((r["gpu"] for r in runs.values() if isinstance(r.get("gpu"), dict)), None) or {}
    gpu_name = gpu.get("name") or (peer or {}).get("gpu") or (devcheck or {}).get("gpu") or "unknown"
    bandwidths = [num((phase(r, "bandwidth") or {}).get("GBps")) for r in runs.values()]
    bandwidths = [b for b in bandwidths if b]
    copy_gbps = max(bandwidths) if bandwidths else None
    matmul = (peer or {}).get("matmul") or {}
    torch_tflops = {m: num(v.get("tflops")) for m, v in (matmul.get("by_tokens") or {}).items()}
    peak_tflops = num(matmul.get("peak_8192_tflops"))
    sheet = datasheet(gpu_name)

    # --- decode ---
    decode = []
    for label, r in runs.items():
        model = r.get("model") or {}
        for row in phase(r, "decode") or []:
            if not isinstance(row, dict):
                continue
            d = dict(run=label, shape=model.get("shape"), layers=model.get("layers"), quantization=model.get("quantization"),
                     gemm=r.get("gemm"), batch=row.get("batch"), context=row.get("context"))
            if row.get("skipped"):
                d["skipped"] = row["skipped"]
            else:
                d.update(step_ms=row.get("median_ms"), tokens_per_s=row.get("tokens_per_s"), floor_ms=row.get("floor_ms"),
                         achieved_GBps=row.get("achieved_GBps"), pct_of_copy_bandwidth=row.get("pct_of_floor"),
                         weight_bytes=row.get("weight_bytes"), kv_bytes_read=row.get("kv_bytes_read"))
            decode.append(d)

    # --- prefill ---
    prefill = []
    for label, r in runs.items():
        model = r.get("model") or {}
        for row in phase(r, "prefill") or []:
            if not isinstance(row, dict):
                continue
            t = row.get("tokens")
            d = dict(run=label, shape=model.get("shape"), layers=model.get("layers"), quantization=model.get("quantization"),
                     gemm=r.get("gemm"), tokens=t)
            if row.get("skipped"):
                d["skipped"] = row["skipped"]
            else:
                ours = num(row.get("linear_tflops_achieved"))
                ref = torch_tflops.get(str(t))
                d.update(ms=row.get("median_ms"), tokens_per_s=row.get("tokens_per_s"), linear_flops=row.get("linear_flops"),
                         attention_flops=row.get("attention_flops"), linear_tflops=ours, torch_matmul_tflops=ref,
                         pct_of_torch_matmul=100.0 * ours / ref if ours and ref else None)
            prefill.append(d)

    # --- KV capacity ---
    kv = []
    for label, r in runs.items():
        k = phase(r, "kv")
        if isinstance(k, dict) and "blocks" in k:
            kv.append(dict(run=label, shape=(r.get("model") or {}).get("shape"), quantization=(r.get("model") or {}).get("quantization"),
                           **{x: k.get(x) for x in ("gpu_memory_budget", "tokens", "concurrent_conversations",
                                                    "conversation_tokens", "kv_bytes")}))

    # --- workload ---
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

    # --- targets ---
    main_decode = [d for d in decode if d.get("shape") == "llama-2-7b" and d.get("quantization") == "none"
                   and d.get("layers") == 32 and num(d.get("pct_of_copy_bandwidth")) is not None]
    b1 = [d for d in main_decode if d.get("batch") == 1]
    b1_pct = max((d["pct_of_copy_bandwidth"] for d in b1), default=None)
    pf = [d for d in prefill if d.get("shape") == "llama-2-7b" and num(d.get("pct_of_torch_matmul")) is not None]
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

    # --- what failed, from every run ---
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

    # --- A10G projection ---
    projection = dict(method="decode: time x (this card's copy GB/s / A10G effective GB/s), A10G effective = "
                             f"{args.a10g_GBps:.0f} GB/s x (measured copy / datasheet here); prefill: time x (torch.matmul "
                             f"rate here / A10G effective rate), A10G effective = {args.a10g_tflops:.0f} TFLOP/s x (measured "
                             "8192^3 rate / datasheet here). 'scaled' scales the whole step (pessimistic); 'fixed_gap' keeps "
                             "the time above the floor constant (launch and host overheads do not scale with bandwidth).",
                      a10g_datasheet=dict(GBps=args.a10g_GBps, tflops_fp16_dense=args.a10g_tflops), this_gpu_datasheet=sheet)
    if copy_gbps and sheet:
        bw_frac = copy_gbps / sheet["GBps"]
        a10g_bw = args.a10g_GBps * bw_frac
        projection.update(copy_fraction_of_datasheet=bw_frac, a10g_effective_GBps=a10g_bw)
        r_bw = copy_gbps / a10g_bw
        rows = []
        for d in main_decode:
            t, fl = num(d.get("step_ms")), num(d.get("floor_ms"))
            if t is None or not isinstance(d.get("batch"), int) or d["batch"] < 1:
                continue
            scaled = t * r_bw
            fixed = t + fl * (r_bw - 1) if fl is not None else None
            rows.append(dict(batch=d["batch"], gemm=d.get("gemm"), h_step_ms=t, scaled_step_ms=scaled, fixed_gap_step_ms=fixed,
                             scaled_tok_s=d["batch"] * 1e3 / scaled, fixed_gap_tok_s=d["batch"] * 1e3 / fixed if fixed else None))
        projection["decode_7b"] = rows
        best = {}
        for r in rows:  # the best GEMM path per batch
            if r["batch"] not in best or r["scaled_step_ms"] < best[r["batch"]]["scaled_step_ms"]:
                best[r["batch"]] = r
        b1p = best.get(1)
        if b1p:
            projection["one_user_tok_s"] = dict(scaled=b1p["scaled_tok_s"], fixed_gap=b1p["fixed_gap_tok_s"],
                                                target=TARGETS["a10g_b1_tok_s"], met=b1p["scaled_tok_s"] >= TARGETS["a10g_b1_tok_s"])
        t20 = interp([(b, r["scaled_step_ms"]) for b, r in best.items()], 20)
        t20f = interp([(b, r["fixed_gap_step_ms"]) for b, r in best.items()], 20)
        if t20:
            projection["twenty_users_tok_s"] = dict(
                scaled=20e3 / t20, fixed_gap=20e3 / t20f if t20f else None, target=TARGETS["a10g_20users_tok_s"],
                met=20e3 / t20 >= TARGETS["a10g_20users_tok_s"],
                note="decode steps of 20 sequences at 512 context, interpolated between the measured batches; "
                     "prefill interleaving and sampling not included")
    if peak_tflops and sheet and torch_tflops:
        mm_frac = peak_tflops / sheet["tflops_fp16_dense"]
        a10g_rate = args.a10g_tflops * mm_frac
        projection.update(matmul_fraction_of_datasheet=mm_frac, a10g_effective_tflops=a10g_rate)
        projection["prefill_7b"] = [dict(tokens=d["tokens"], gemm=d.get("gemm"), h_ms=d["ms"],
                                         a10g_ms=d["ms"] * (torch_tflops.get(str(d["tokens"])) or peak_tflops) / a10g_rate)
                                    for d in pf if num(d.get("ms")) is not None]
    seven_b_kv = [k for k in kv if k.get("shape") == "llama-2-7b"]
    if seven_b_kv:
        projection["kv_at_a10g_budget_7b_conversations"] = seven_b_kv[0].get("concurrent_conversations")

    # --- the peer ---
    peer_info = dict(name="transformers", version=(peer or {}).get("transformers"), torch=(peer or {}).get("torch"),
                     api=((peer or {}).get("workload") or {}).get("mode"),
                     attn_implementation=((peer or {}).get("workload") or {}).get("attn_implementation"),
                     continuous_batching_config=((peer or {}).get("workload") or {}).get("continuous_batching_config_set"),
                     warmup_s=((peer or {}).get("workload") or {}).get("warmup_s"),
                     cuda_graph=((peer or {}).get("workload") or {}).get("cuda_graph"),
                     manager_errors=((peer or {}).get("workload") or {}).get("manager_errors"),
                     model=(peer or {}).get("model"),
                     generate_batch1=(peer or {}).get("generate"),
                     errors={k: v for k, v in (peer or {}).items() if k.endswith("_error")} or None)

    out = dict(date=args.date, commit=args.commit or None, gpu=dict(gpu, name=gpu_name), datasheet=sheet,
               peer=peer_info,
               ceilings=dict(copy_GBps=copy_gbps, torch_matmul_tflops=torch_tflops or None, torch_matmul_8192_tflops=peak_tflops),
               decode=decode, prefill=prefill, kv_capacity=kv, workload=workload, targets=targets,
               a10g_projection=projection,
               device_check=devcheck, errors=errors or None, problems=problems or None,
               raw=dict(gyre=runs, transformers=peer))
    os.makedirs(args.out_dir, exist_ok=True)
    plot_path = None
    if not args.no_plot:
        plot_path = plot(out, os.path.join(args.out_dir, f"gpu-{args.date}.png"), problems)
    out["problems"] = problems or None
    out["plot"] = os.path.basename(plot_path) if plot_path else None
    json_path = os.path.join(args.out_dir, f"gpu-{args.date}.json")
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)

    # --- the short table, last ---
    print(f"== GPU {gpu_name}; copy {fmt(copy_gbps, '.0f')} GB/s; torch.matmul fp16 "
          + ", ".join(f"M={m}: {fmt(v, '.0f')}" for m, v in sorted(torch_tflops.items(), key=lambda x: int(x[0])))
          + f" TFLOP/s (8192^3: {fmt(peak_tflops, '.0f')}); transformers {peer_info['version'] or '-'}")
    print(f"{'decode':<26} {'batch':>5} {'ms/step':>9} {'tok/s':>9} {'% copy BW':>9}")
    for d in decode:
        name = f"{d['shape']}{'-int8' if d.get('quantization') == 'int8' else ''} {d.get('gemm')}"
        if d.get("skipped"):
            print(f"{name:<26} {str(d['batch']):>5} skipped: {d['skipped']}")
        else:
            print(f"{name:<26} {str(d['batch']):>5} {fmt(d.get('step_ms'), '.2f'):>9} {fmt(d.get('tokens_per_s')):>9} "
                  f"{fmt(d.get('pct_of_copy_bandwidth')):>9}")
    print(f"{'prefill':<26} {'tok':>5} {'ms':>9} {'TFLOP/s':>9} {'% matmul':>9}")
    for d in prefill:
        name = f"{d['shape']} {d.get('gemm')}"
        if d.get("skipped"):
            print(f"{name:<26} {str(d['tokens']):>5} skipped: {d['skipped']}")
        else:
            print(f"{name:<26} {str(d['tokens']):>5} {fmt(d.get('ms'), '.1f'):>9} {fmt(d.get('linear_tflops')):>9} "
                  f"{fmt(d.get('pct_of_torch_matmul')):>9}")
    for k in kv:
        budget = k['gpu_memory_budget']
        budget = f"{budget / 2**30:.2f} GiB" if isinstance(budget, (int, float)) else budget
        print(f"kv {k['shape']} at {budget}: {k['tokens']} tokens = {k['concurrent_conversations']} "
              f"conversations of {k['conversation_tokens']} tokens")
    print(f"{'workload':<8} {'gyre rps':>9} {'HF rps':>9} {'ratio':>6} {'gyre lat':>9} {'HF lat':>9} {'gyre ttft':>9} "
          f"{'HF ttft':>9} {'target':>6}")
    for w in workload:
        g, p = w["gyre"], w["transformers"]
        met = {True: "met", False: "NOT", None: "-"}[w["target_met"]]
        print(f"N={str(w['users']):<6} {fmt(g.get('requests_per_s'), '.2f'):>9} {fmt(p.get('requests_per_s'), '.2f'):>9} "
              f"{fmt(w['throughput_ratio'], '.2f'):>6} {fmt(g.get('mean_latency_s'), '.2f'):>9} "
              f"{fmt(p.get('mean_latency_s'), '.2f'):>9} {fmt(g.get('mean_ttft_s'), '.3f'):>9} "
              f"{fmt(p.get('mean_ttft_s'), '.3f'):>9} {met:>6}")
    gen = peer_info.get("generate_batch1") or {}
    if gen:
        print(f"transformers generate batch 1: {fmt(gen.get('decode_tokens_per_s'))} tok/s")
    one, twenty = projection.get("one_user_tok_s"), projection.get("twenty_users_tok_s")
    if one or twenty:
        print(f"A10G projection: 1 user {fmt((one or {}).get('scaled'))}-{fmt((one or {}).get('fixed_gap'))} tok/s "
              f"(target 40); 20 users {fmt((twenty or {}).get('scaled'), '.0f')}-{fmt((twenty or {}).get('fixed_gap'), '.0f')} "
              f"tok/s (target 550)")
    for name, t in targets.items():
        print(f"target {name}: {json.dumps(t['value']) if not isinstance(t['value'], float) else fmt(t['value'])} -> "
              f"{ {True: 'met', False: 'NOT MET', None: 'not measured'}[t['met']] }")
    for k, v in errors.items():
        print(f"error: {k}: {str(v)[:300]}")
    for p in problems:
        print(f"problem: {p}")
    print(f"wrote {json_path}" + (f" and {plot_path}" if plot_path else " (no plot)"))
    return 0


def plot(out, path, problems):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        problems.append(f"no plot: matplotlib: {e}")
        return None
    try:
        fig, axes = plt.subplots(1, 3, figsize=(17, 5))
        ax = axes[0]
        for side, color in (("gyre", "tab:blue"), ("transformers", "tab:orange")):
            pts = [(w[side].get("mean_latency_s"), w[side].get("requests_per_s"), w["users"]) for w in out["workload"]
                   if num(w[side].get("mean_latency_s")) is not None and num(w[side].get("requests_per_s")) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=side)
                for x, y, n in pts:
                    ax.annotate(f"N={n}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("mean end-to-end latency (s)")
        ax.set_ylabel("requests/s")
        ax.set_title("seed workload, N closed-loop users")
        ax.grid(alpha=0.3)
        ax.legend()
        ax = axes[1]
        rows = [d for d in out["decode"] if num(d.get("pct_of_copy_bandwidth")) is not None]
        labels = [f"{d['shape'].replace('llama-2-', 'L')}{'-i8' if d.get('quantization') == 'int8' else ''}\n{d.get('gemm')} b{d['batch']}"
                  for d in rows]
        ax.bar(range(len(rows)), [d["pct_of_copy_bandwidth"] for d in rows], color="tab:blue")
        ax.axhline(TARGETS["decode_b1_pct"], color="red", linestyle="--", label="target 85% (batch 1)")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("% of measured copy bandwidth")
        ax.set_title(f"decode, 512 context (copy {fmt(out['ceilings']['copy_GBps'], '.0f')} GB/s)")
        ax.legend(fontsize=8)
        ax = axes[2]
        rows = [d for d in out["prefill"] if num(d.get("pct_of_torch_matmul")) is not None]
        ax.bar(range(len(rows)), [d["pct_of_torch_matmul"] for d in rows], color="tab:green")
        ax.axhline(TARGETS["prefill_pct"], color="red", linestyle="--", label="target 70%")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{d['tokens']} tok\n{d.get('gemm')}" for d in rows], fontsize=8)
        ax.set_ylabel("% of torch.matmul fp16 rate, same shapes")
        ax.set_title("prefill chunk: linear FLOPs / whole forward time")
        ax.legend(fontsize=8)
        fig.suptitle(f"Gyre vs transformers {out['peer'].get('version') or ''} on {out['gpu'].get('name')} ({out['date']})")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    except Exception as e:
        problems.append(f"no plot: {type(e).__name__}: {e}")
        return None


if __name__ == "__main__":
    sys.exit(main())
