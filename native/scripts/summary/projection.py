"""The A10G projection (see bench/NOTES-cuda.md): decode scales by bytes over bandwidth, prefill by
FLOPs over the tensor rate, each at the efficiency measured on this card."""
from summary.figures import TARGETS, interp, num


def a10g_projection(args, copy_gbps, sheet, main_decode, pf, peak_tflops, torch_tflops, kv):
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
    return projection
