"""summarise_gpu.py's command line and run: read the inputs, build the sections, write the JSON and
the plot, print the table. A bug in the summary still writes the raw inputs."""
import argparse
import datetime as dt
import json
import os
import sys

from summary.figures import datasheet, load, num
from summary.plot import plot
from summary.projection import a10g_projection
from summary.sections import (collect_errors, decode_rows, kv_rows, main_decode_rows, main_prefill_rows, peer_summary,
                              phase, prefill_rows, target_checks, workload_rows)
from summary.table import print_table


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

    # The GPU and the ceilings.
    gpu = next((r["gpu"] for r in runs.values() if isinstance(r.get("gpu"), dict)), None) or {}
    gpu_name = gpu.get("name") or (peer or {}).get("gpu") or (devcheck or {}).get("gpu") or "unknown"
    bandwidths = [num((phase(r, "bandwidth") or {}).get("GBps")) for r in runs.values()]
    bandwidths = [b for b in bandwidths if b]
    copy_gbps = max(bandwidths) if bandwidths else None
    matmul = (peer or {}).get("matmul") or {}
    torch_tflops = {m: num(v.get("tflops")) for m, v in (matmul.get("by_tokens") or {}).items()}
    peak_tflops = num(matmul.get("peak_8192_tflops"))
    sheet = datasheet(gpu_name)

    decode = decode_rows(runs)
    prefill = prefill_rows(runs, torch_tflops)
    kv = kv_rows(runs)
    workload, gyre_levels = workload_rows(runs, peer)
    main_decode, pf = main_decode_rows(decode), main_prefill_rows(prefill)
    targets = target_checks(main_decode, pf, workload)
    errors = collect_errors(runs, peer, gyre_levels)
    projection = a10g_projection(args, copy_gbps, sheet, main_decode, pf, peak_tflops, torch_tflops, kv)
    peer_info = peer_summary(peer)

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

    print_table(out, json_path, plot_path)
    return 0
