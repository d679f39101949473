"""The two GPU phases before the workload: torch.matmul on the prefill GEMM shapes (the ceiling
for prefill) and plain model.generate at batch 1."""
import statistics
import time

from peer.trace import prompt_ids

def linear_shapes(s):
    """(name, N, K) of one decoder layer's linear layers as gyre runs them (fused qkv and gate_up)."""
    H, I = s["hidden"], s["intermediate"]
    d = H // s["heads"]
    return [("qkv", (s["heads"] + 2 * s["kv_heads"]) * d, H), ("o", H, s["heads"] * d),
            ("gate_up", 2 * I, H), ("down", H, I)]


def time_cuda(torch, fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times)


def phase_matmul(torch, s, ms, reps):
    out = dict(dtype="float16", op="torch.matmul(A[M,K], W[N,K].t())", reps=reps, timing="CUDA events, median",
               by_tokens={})
    g = torch.Generator(device="cuda").manual_seed(1234)
    for M in ms:
        rows, flops_sum, ms_sum = [], 0.0, 0.0
        for name, N, K in linear_shapes(s):
            A = torch.randn((M, K), generator=g, device="cuda", dtype=torch.float16)
            W = torch.randn((N, K), generator=g, device="cuda", dtype=torch.float16)
            med, best = time_cuda(torch, lambda: torch.matmul(A, W.t()), reps)
            flops = 2.0 * M * N * K
            rows.append(dict(name=name, M=M, N=N, K=K, median_ms=med, min_ms=best, tflops=flops / (med * 1e-3) / 1e12))
            flops_sum += flops
            ms_sum += med
            del A, W
        out["by_tokens"][str(M)] = dict(shapes=rows, layer_flops=flops_sum, layer_ms=ms_sum,
                                        tflops=flops_sum / (ms_sum * 1e-3) / 1e12)
        print(f"torch.matmul M={M}: {flops_sum / (ms_sum * 1e-3) / 1e12:.1f} TFLOP/s over one layer's linear shapes",
              flush=True)
    n = 8192
    A = torch.randn((n, n), generator=g, device="cuda", dtype=torch.float16)
    B = torch.randn((n, n), generator=g, device="cuda", dtype=torch.float16)
    med, _ = time_cuda(torch, lambda: torch.matmul(A, B), 10)
    out["peak_8192_tflops"] = 2.0 * n ** 3 / (med * 1e-3) / 1e12
    print(f"torch.matmul 8192^3: {out['peak_8192_tflops']:.1f} TFLOP/s", flush=True)
    del A, B
    torch.cuda.empty_cache()
    return out


def phase_generate(torch, model, prompt_len=512, new_tokens=64):
    ids = torch.tensor([prompt_ids(1 << 31, prompt_len)], device="cuda")
    mask = torch.ones_like(ids)

    def gen(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t, out.shape[1] - prompt_len

    gen(4)  # warm-up
    t1 = min(gen(1)[0] for _ in range(2))
    tn, got = gen(new_tokens + 1)
    tn2, _ = gen(new_tokens + 1)
    tn = min(tn, tn2)
    ms = (tn - t1) / new_tokens * 1e3
    print(f"generate batch 1, prompt {prompt_len}: {ms:.2f} ms/token = {1e3 / ms:.1f} tok/s", flush=True)
    return dict(batch=1, prompt_tokens=prompt_len, new_tokens=new_tokens, generated=int(got),
                attn_implementation="sdpa", cache="default (dynamic)", first_token_s=t1, total_s=tn,
                decode_ms_per_token=ms, decode_tokens_per_s=1e3 / ms)
