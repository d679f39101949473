"""hf_peer.py's command line and run: the trace, then each phase in turn, the JSON rewritten after
every phase and level so that a run cut short by its time limit keeps what it measured."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

from peer.model import make_model
from peer.phases import phase_generate, phase_matmul
from peer.shapes import SHAPES
from peer.trace import generate_trace, level_plan, prompt_ids, read_trace
from peer.workload import Workload


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--shape", default="llama-2-7b", choices=sorted(SHAPES))
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--trace", default="")
    ap.add_argument("--trace-seed", type=int, default=20261201)
    ap.add_argument("--trace-size", type=int, default=512)
    ap.add_argument("--users", default="1,4,16,32,64")
    ap.add_argument("--requests-per-user", type=int, default=2)
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--phases", default="matmul,generate,workload")
    ap.add_argument("--matmul-tokens", default="512,2048")
    ap.add_argument("--matmul-reps", type=int, default=20)
    ap.add_argument("--time-limit-s", type=float, default=0)
    ap.add_argument("--max-batch-tokens", type=int, default=0, help="ContinuousBatchingConfig.max_batch_tokens "
                    "(default: transformers' own choice)")
    ap.add_argument("--no-cuda-graph", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: print the plan and the trace summary")
    return ap.parse_args()


class Run:
    """The report being written, its failures, and the time limit."""

    def __init__(self, args, users):
        self.args = args
        self.start = time.time()
        self.deadline = self.start + args.time_limit_s if args.time_limit_s > 0 else None
        self.failures = []
        self.report = dict(peer="transformers", tool="hf_peer.py", shape=args.shape,
                           layers=args.layers or SHAPES[args.shape]["layers"],
                           dtype="float16", weights="random N(0, 0.02) of its own (norms 1), made on the GPU",
                           users=users, requests_per_user=args.requests_per_user, min_requests=args.min_requests)

    def save(self):
        self.report["seconds"] = time.time() - self.start
        self.report["ok"] = not self.failures
        tmp = self.args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.report, f, indent=1)
        os.replace(tmp, self.args.json)

    def fail(self, phase, e):
        self.failures.append(phase)
        self.report[phase + "_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:]
        self.report.setdefault("tracebacks", {})[phase] = traceback.format_exc()[-4000:]
        print(f"hf_peer: {phase}: {self.report[phase + '_error']}", file=sys.stderr, flush=True)
        self.save()

    def out_of_time(self):
        return self.deadline is not None and time.time() > self.deadline


def setup_torch(run):
    """torch, or None after recording why there is no usable GPU."""
    report = run.report
    try:
        import torch
        import transformers
        report["transformers"] = transformers.__version__
        report["torch"] = torch.__version__
        report["cuda"] = torch.version.cuda
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        report["gpu"] = torch.cuda.get_device_name(0)
    except Exception as e:
        run.fail("setup", e)
        return None
    run.save()
    print(f"hf_peer: transformers {report['transformers']}, torch {report['torch']}, {report['gpu']}", flush=True)
    return torch


def build_model(run, torch):
    """The model, or None if it could not be made (the failure is in the report)."""
    args = run.args
    model = None
    try:
        t = time.time()
        made = run.report.setdefault("model", {})
        model, cfg = make_model(torch, args.shape, args.layers, args.seed, made)
        w = next(model.parameters())
        made.update(class_name=type(model).__name__, layers=cfg.num_hidden_layers, create_s=time.time() - t,
                    parameters=sum(p.numel() for p in model.parameters()),
                    first_param_std=float(w.float().std()), device=str(w.device), dtype=str(w.dtype),
                    attn_implementation=getattr(model.config, "_attn_implementation", None))
        print(f"hf_peer: {type(model).__name__} made in {time.time() - t:.1f} s", flush=True)
    except Exception as e:
        run.fail("model", e)
    run.save()
    return model


def print_level(n, lv):
    def f(x, scale=1.0, fmt="10.3f"):
        return format(x * scale, fmt) if isinstance(x, (int, float)) else format("-", ">10")
    print(f"{n:<6} {f(lv.get('requests_per_s'), 1.0, '9.2f')} {f(lv.get('output_tokens_per_s'), 1.0, '12.1f')} "
          f"{f(lv.get('mean_latency_s'))} {f(lv.get('mean_ttft_s'))} {f(lv.get('mean_tpot_s'), 1e3, '10.2f')} "
          f"{lv.get('errors', 0):>7}", flush=True)


def run_workload(run, torch, model, trace, users, plan):
    report, deadline = run.report, run.deadline
    wl = Workload(torch, model, trace, run.args, report)
    try:
        wl.start()
        run.save()
        warm = min(8, max(users))
        try:
            report["workload"]["warmup"] = wl.run_level(warm, warm, 1 << 30, fixed_output=8, deadline=deadline)
        except Exception as e:  # the levels say whether it was more than the warm-up
            report["workload"]["warmup"] = dict(error="".join(traceback.format_exception_only(type(e), e)).strip()[-1000:])
        run.save()
        levels = report["workload"].setdefault("levels", [])
        print(f"{'users':<6} {'req/s':>9} {'out tok/s':>12} {'latency s':>10} {'TTFT s':>10} {'TPOT ms':>10} {'errors':>7}",
              flush=True)
        for n, count, k0 in plan:
            if run.out_of_time():
                levels.append(dict(users=n, skipped="time limit"))
                run.save()
                continue
            try:
                lv = wl.run_level(n, count, k0, deadline=deadline)
            except Exception as e:  # one level's failure does not lose the others
                lv = dict(users=n, requests=count, completed=0, errors=count,
                          first_error="".join(traceback.format_exception_only(type(e), e)).strip()[-1000:])
            levels.append(lv)
            run.save()
            print_level(n, lv)
            if lv.get("errors") or lv.get("first_error"):
                run.failures.append(f"workload users={n}")
    except Exception as e:
        run.fail("workload", e)
    finally:
        wl.stop()
    run.save()


def main(description):
    args = parse_args(description)
    phases = set(args.phases.split(","))
    users = [int(x) for x in args.users.split(",") if x]
    run = Run(args, users)
    report = run.report
    try:
        trace = read_trace(args.trace) if args.trace else generate_trace(args.trace_seed, args.trace_size)
        report["trace"] = args.trace or f"built-in generator, seed {args.trace_seed}"
    except Exception as e:
        run.fail("trace", e)
        return 1
    report["trace_requests"] = len(trace)
    report["trace_mean_prompt_tokens"] = statistics.fmean(p for p, _ in trace)
    report["trace_mean_output_tokens"] = statistics.fmean(o for _, o in trace)
    plan = level_plan(users, args.min_requests, args.requests_per_user)
    if args.dry_run:
        print(json.dumps(dict(plan=plan, first_prompt_ids=prompt_ids(0, 8), **{k: report[k] for k in (
            "trace", "trace_requests", "trace_mean_prompt_tokens", "trace_mean_output_tokens")}), indent=1))
        return 0

    torch = setup_torch(run)
    if torch is None:
        return 1
    s = SHAPES[args.shape]
    if args.layers:
        s = dict(s, layers=args.layers)

    if "matmul" in phases:
        try:
            report["matmul"] = phase_matmul(torch, s, [int(x) for x in args.matmul_tokens.split(",")], args.matmul_reps)
        except Exception as e:
            run.fail("matmul", e)
        run.save()

    model = None
    if ("generate" in phases or "workload" in phases) and not run.out_of_time():
        model = build_model(run, torch)

    if model is not None and "generate" in phases and not run.out_of_time():
        try:
            report["generate"] = phase_generate(torch, model)
        except Exception as e:
            run.fail("generate", e)
        run.save()

    if model is not None and "workload" in phases:
        run_workload(run, torch, model, trace, users, plan)
    run.save()
    print(f"hf_peer: done in {time.time() - run.start:.1f} s; {len(run.failures)} failure(s); JSON: {args.json}", flush=True)
    return 0 if not run.failures else 1
