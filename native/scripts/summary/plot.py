"""The summary's plot: the workload's latency against throughput, decode against the copy
bandwidth, prefill against torch.matmul. Skipped, with a problem said, without matplotlib."""
from summary.figures import TARGETS, fmt, num


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
