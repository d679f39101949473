"""The figures the summary is built from: datasheets, targets, and tolerant readers of the inputs
(a missing or non-finite value is None, never an exception)."""
import json
import math

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
