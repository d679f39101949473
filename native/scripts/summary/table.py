"""The short table the summary prints, last, from the summary it wrote."""
import json

from summary.figures import fmt


def print_rows(header, rows, key, name, figures):
    """One row per decode batch or prefill chunk: a name, the row's `key`, three figures."""
    print(f"{header[0]:<26} {header[1]:>5} " + " ".join(f"{h:>9}" for h in header[2:]))
    for d in rows:
        if d.get("skipped"):
            print(f"{name(d):<26} {str(d[key]):>5} skipped: {d['skipped']}")
        else:
            print(f"{name(d):<26} {str(d[key]):>5} " + " ".join(f"{x:>9}" for x in figures(d)))


def print_table(out, json_path, plot_path):
    gpu_name, peer_info, ceilings = out["gpu"]["name"], out["peer"], out["ceilings"]
    copy_gbps, peak_tflops = ceilings["copy_GBps"], ceilings["torch_matmul_8192_tflops"]
    torch_tflops = ceilings["torch_matmul_tflops"] or {}
    decode, prefill, kv, workload = out["decode"], out["prefill"], out["kv_capacity"], out["workload"]
    projection, targets = out["a10g_projection"], out["targets"]
    errors, problems = out["errors"] or {}, out["problems"] or []
    print(f"== GPU {gpu_name}; copy {fmt(copy_gbps, '.0f')} GB/s; torch.matmul fp16 "
          + ", ".join(f"M={m}: {fmt(v, '.0f')}" for m, v in sorted(torch_tflops.items(), key=lambda x: int(x[0])))
          + f" TFLOP/s (8192^3: {fmt(peak_tflops, '.0f')}); transformers {peer_info['version'] or '-'}")
    print_rows(("decode", "batch", "ms/step", "tok/s", "% copy BW"), decode, "batch",
               lambda d: f"{d['shape']}{'-int8' if d.get('quantization') == 'int8' else ''} {d.get('gemm')}",
               lambda d: (fmt(d.get('step_ms'), '.2f'), fmt(d.get('tokens_per_s')), fmt(d.get('pct_of_copy_bandwidth'))))
    print_rows(("prefill", "tok", "ms", "TFLOP/s", "% matmul"), prefill, "tokens",
               lambda d: f"{d['shape']} {d.get('gemm')}",
               lambda d: (fmt(d.get('ms'), '.1f'), fmt(d.get('linear_tflops')), fmt(d.get('pct_of_torch_matmul'))))
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
