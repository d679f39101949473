"""A workload level's figures: each finished request's latency, TTFT and TPOT from the manager's
own stamps, then the level's rates and percentiles."""
import math
import statistics


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


def record_result(res, r, t_sub, expected, now, lat, ttft, tpot):
    """Adds one finished request (r, submitted at t_sub for `expected` tokens) to the level; returns
    its end stamp, or None if it failed."""
    if getattr(r, "error", None) is not None:
        res["errors"] += 1
        res.setdefault("first_error", str(r.error)[:500])
        return None
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
    return end


def add_rates(res, t0, last_end, lat, ttft, tpot):
    wall = max(last_end, t0 + 1e-9) - t0
    res["wall_s"] = wall
    res["requests_per_s"] = res["completed"] / wall
    res["output_tokens_per_s"] = res["output_tokens"] / wall
    res["mean_latency_s"], res["p50_latency_s"], res["p99_latency_s"] = summary_stats(lat)
    res["mean_ttft_s"], res["p50_ttft_s"], _ = summary_stats(ttft)
    res["mean_tpot_s"], _, _ = summary_stats(tpot)
    res["timestamps"] = "manager's own (record_timestamps)" if ttft else "none: TTFT/TPOT unavailable"
