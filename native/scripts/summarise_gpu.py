#!/usr/bin/env python3
"""Merges gyre_bench's and hf_peer.py's JSON into one result file and a plot.

usage: summarise_gpu.py --gyre LABEL=FILE [--gyre LABEL=FILE ...] [--peer FILE] [--device-check FILE]
                        --out-dir DIR [--date YYYYMMDD] [--commit SHA] [--no-plot]
                        [--a10g-GBps 600] [--a10g-tflops 125]

Writes DIR/gpu-<date>.json (the GPU's name, the peer named "transformers" with its version, every
figure of every input under "raw", and the comparisons below) and DIR/gpu-<date>.png (skipped if
matplotlib cannot be imported), then prints a short table, last.

The parts are in summary/: figures (datasheets, targets, tolerant readers), sections (decode,
prefill, KV, workload, targets, errors), projection (the A10G), table, plot, cli.

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
import sys

from summary.cli import main

if __name__ == "__main__":
    sys.exit(main())
