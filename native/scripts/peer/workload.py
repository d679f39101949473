"""The workload phase: N closed-loop users replaying the trace through transformers' continuous
batching manager (or generate_batch per level where this version has no usable manager)."""
import dataclasses
import gc
import inspect
import statistics
import sys
import time
import traceback

from peer.compat import describe, filter_kwargs, import_cb_config_class
from peer.level_stats import add_rates, record_result, summary_stats
from peer.trace import lround, prompt_ids

class Workload:
    def __init__(self, torch, model, trace, args, report):
        self.torch, self.model, self.trace, self.args, self.report = torch, model, trace, args, report
        self.manager = None
        self.started = False
        self.gen = self.cbc = None
        self.add_params = {}
        self.info = report.setdefault("workload", {})

    def configs(self, use_cuda_graph):
        """(GenerationConfig, ContinuousBatchingConfig or None) for one try, recording what was set."""
        import transformers
        from transformers import GenerationConfig
        info = self.info
        gen = GenerationConfig(max_new_tokens=80, do_sample=False, pad_token_id=0, bos_token_id=1)
        gen.eos_token_id = None  # init_continuous_batching turns None into -1: EOS never stops a request
        cb = dict(use_cuda_graph=use_cuda_graph)
        if self.args.max_batch_tokens:
            cb["max_batch_tokens"] = self.args.max_batch_tokens
        ContinuousBatchingConfig, where = import_cb_config_class(transformers)
        cbc = None
        if ContinuousBatchingConfig is not None:
            info["continuous_batching_config_class"] = f"{where}.ContinuousBatchingConfig"
            if dataclasses.is_dataclass(ContinuousBatchingConfig):  # fields, init or not
                names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
                kept = {k: v for k, v in cb.items() if k in names}
                dropped = [k for k in cb if k not in names]
            else:
                kept, dropped = filter_kwargs(ContinuousBatchingConfig, cb)
            cbc = ContinuousBatchingConfig(**kept)
            info["continuous_batching_config_set"] = {k: repr(v) for k, v in kept.items()}
            if dropped:
                info["continuous_batching_config_unknown"] = dropped
        else:  # transformers < 5.3: the settings were GenerationConfig attributes
            for k, v in cb.items():
                setattr(gen, k, v)
            info["generation_config_set"] = {k: repr(v) for k, v in cb.items()}
        return gen, cbc

    def ensure_paged_attention(self):
        """The manager of transformers 5 switches the model to "paged|<impl>" itself; older versions
        needed the paged name set by hand ("sdpa_paged" in 4.5x). Records what the model runs."""
        cfg = self.model.config
        now = getattr(cfg, "_attn_implementation", None) or ""
        if "paged" in now:
            return
        setter = getattr(self.model, "set_attn_implementation", None)
        for name in ("paged|sdpa", "sdpa_paged"):
            try:
                if setter is not None:
                    setter(name)
                else:
                    cfg._attn_implementation = name
                self.info["attn_implementation_set"] = name
                return
            except Exception as e:
                self.info.setdefault("attn_implementation_set_errors", []).append(f"{name}: {e!r}"[:300])

    def start(self):
        """Makes the manager and captures its CUDA graphs (warmup), CUDA graphs on; if that fails, once
        more with CUDA graphs off; if that fails too, generate_batch per level. The manager's thread
        starts with the first requests (run_level), so an async first batch never finds an empty queue."""
        import transformers
        info = self.info
        info["transformers"] = transformers.__version__
        init = getattr(self.model, "init_continuous_batching", None)
        tries = [not self.args.no_cuda_graph] + ([False] if not self.args.no_cuda_graph else [])
        for use_graph in tries:
            self.gen, self.cbc = self.configs(use_graph)
            if init is None:
                break
            try:
                self.ensure_paged_attention()
                hints = None
                try:
                    from transformers.generation.continuous_batching.utils import WorkloadHints
                    hints = WorkloadHints(max_prompt_length=max(p for p, _ in self.trace),
                                          max_generated_length=max(o for _, o in self.trace))
                except Exception:  # not in this version
                    pass
                kwargs, _ = filter_kwargs(init, dict(generation_config=self.gen, continuous_batching_config=self.cbc,
                                                     workload_hints=hints))
                kwargs = {k: v for k, v in kwargs.items() if v is not None}
                info["init_continuous_batching_kwargs"] = sorted(kwargs)
                manager = init(**kwargs)
                if hasattr(manager, "warmup"):
                    t = time.perf_counter()
                    manager.warmup()
                    info["warmup_s"] = time.perf_counter() - t
                    print(f"transformers continuous batching: warm-up (CUDA graph capture) {info['warmup_s']:.1f} s",
                          flush=True)
                else:
                    info["warmup"] = "no ContinuousBatchingManager.warmup in this version"
                self.manager = manager
                self.add_params = inspect.signature(manager.add_request).parameters
                info["cuda_graph"] = use_graph
                info["mode"] = ("closed loop through model.init_continuous_batching() -> ContinuousBatchingManager "
                                "(what generate_batch wraps), add_request per request with its own max_new_tokens")
                break
            except Exception as e:
                info.setdefault("manager_errors", []).append(
                    f"use_cuda_graph={use_graph}: " + "".join(traceback.format_exception_only(type(e), e)).strip()[-1500:])
                print(f"hf_peer: continuous batching manager (use_cuda_graph={use_graph}) failed: {e!r}",
                      file=sys.stderr, flush=True)
                manager = self.manager = None
            # Here, after the except clause has released the traceback (whose frames hold the failed
            # manager): free its paged cache, which sizes itself from free GPU memory, before the next try.
            gc.collect()
            try:
                self.torch.cuda.empty_cache()
            except Exception:
                pass
        if self.manager is None:
            info["mode"] = ("generate_batch per level (no usable init_continuous_batching in this version; see "
                            "manager_errors)")
        info["attn_implementation"] = getattr(self.model.config, "_attn_implementation", None)

    def ensure_started(self):
        if self.started or self.manager is None:
            return
        self.manager.start()
        self.started = True
        self.info["resolved_continuous_batching_config"] = describe(
            getattr(self.manager, "continuous_batching_config", None))
        self.info["attn_implementation"] = getattr(self.model.config, "_attn_implementation", None)

    def stop(self):
        if self.manager is not None and self.started:
            try:
                self.manager.stop(block=True, timeout=10)
            except Exception as e:  # the numbers are already saved
                self.info["stop_error"] = repr(e)
        destroy = getattr(self.model, "destroy_cached_continuous_batching_manager", None)
        if destroy is not None and self.manager is None:
            try:
                destroy()
            except Exception:
                pass

    def run_level(self, users, count, k0, fixed_output=None, deadline=None):
        if self.manager is None:
            return self.run_level_generate_batch(users, count, k0, fixed_output)
        from time import perf_counter
        m, trace = self.manager, self.trace
        pending = {}
        state = dict(issued=0)
        lat, ttft, tpot = [], [], []
        res = dict(users=users, requests=count, completed=0, errors=0, wrong_length=0, prompt_tokens=0,
                   output_tokens=0)
        prompts = [prompt_ids(k0 + i, trace[(k0 + i) % len(trace)][0]) for i in range(count)]  # before the clock

        def submit():
            i = state["issued"]
            k = k0 + i
            p, o = trace[k % len(trace)]
            o = fixed_output or o
            rid = f"r{k}"
            kw = dict(input_ids=prompts[i], request_id=rid, max_new_tokens=o)
            if "record_timestamps" in self.add_params:
                kw["record_timestamps"] = True
            if "eos_token_id" in self.add_params:
                kw["eos_token_id"] = -1
            if "streaming" in self.add_params:
                kw["streaming"] = False
            pending[rid] = (perf_counter(), o)
            res["prompt_tokens"] += p
            state["issued"] += 1
            m.add_request(**kw)

        t0 = perf_counter()
        last_end = t0
        for _ in range(min(users, count)):
            submit()
        self.ensure_started()
        done, last_progress = 0, perf_counter()
        while done < count:
            r = m.get_result(timeout=1.0)
            now = perf_counter()
            if r is None:
                if hasattr(m, "is_running") and not m.is_running():
                    res["first_error"] = "the generation thread stopped"
                    break
                if deadline is not None and time.time() > deadline:
                    res["first_error"] = f"time limit: partial level ({done} of {count} requests)"
                    res["partial"] = True
                    break
                if now - last_progress > 120:
                    res["first_error"] = "no request finished for 120 s"
                    break
                continue
            rid = getattr(r, "request_id", None)
            if rid not in pending:
                continue
            failed = getattr(r, "error", None) is not None
            if not failed and hasattr(r, "is_finished") and not r.is_finished():
                continue  # a streamed partial output
            t_sub, expected = pending.pop(rid)
            done += 1
            last_progress = now
            end = record_result(res, r, t_sub, expected, now, lat, ttft, tpot)
            if end is not None:
                last_end = max(last_end, end)
            if deadline is not None and time.time() > deadline and done < count:
                res["first_error"] = f"time limit: partial level ({done} of {count} requests)"
                res["partial"] = True
                break
            if state["issued"] < count:
                submit()
        if pending and hasattr(m, "cancel_request"):  # left behind by a break: do not let them run on
            for rid in list(pending):
                try:
                    m.cancel_request(rid)
                except Exception:
                    pass
        add_rates(res, t0, last_end, lat, ttft, tpot)
        return res

    def run_level_generate_batch(self, users, count, k0, fixed_output=None):
        """Fallback: the whole level at once through generate_batch, one max_new_tokens (the mean)."""
        gb = getattr(self.model, "generate_batch", None)
        if gb is None:
            raise RuntimeError("this transformers has neither init_continuous_batching nor generate_batch")
        reqs = [self.trace[(k0 + i) % len(self.trace)] for i in range(count)]
        out_len = fixed_output or max(1, lround(statistics.fmean(o for _, o in reqs)))
        inputs = [prompt_ids(k0 + i, p) for i, (p, _) in enumerate(reqs)]
        kwargs, _ = filter_kwargs(gb, dict(
            inputs=inputs, generation_config=self.gen, continuous_batching_config=self.cbc, progress_bar=False,
            record_timestamps=True, persistent_manager=True, max_new_tokens=out_len), extra=("max_new_tokens",))
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self.info["generate_batch_kwargs"] = sorted(kwargs)
        t0 = time.perf_counter()
        results = gb(**kwargs)
        wall = time.perf_counter() - t0
        outs = list(results.values()) if isinstance(results, dict) else list(results or [])
        n_out = sum(len(getattr(r, "generated_tokens", []) or []) for r in outs)
        lat, ttft = [], []
        for r in outs:  # from the manager's own stamps where this version has them
            created, ts, span = getattr(r, "created_time", None), getattr(r, "timestamps", None) or [], getattr(r, "lifespan", None)
            end = span[1] if span and span[1] and span[1] > 0 else (ts[-1] if ts else None)
            if created is not None and end is not None:
                lat.append(end - created)
            if created is not None and ts:
                ttft.append(ts[0] - created)
        mean_lat = summary_stats(lat)[0]
        return dict(users=users, requests=count, completed=len(outs), errors=count - len(outs),
                    mode=f"generate_batch: all {count} at once, max_new_tokens {out_len} each (not a closed loop)",
                    wall_s=wall, requests_per_s=len(outs) / wall, output_tokens_per_s=n_out / wall,
                    output_tokens=n_out, prompt_tokens=sum(p for p, _ in reqs),
                    mean_latency_s=mean_lat if mean_lat is not None else wall, mean_ttft_s=summary_stats(ttft)[0])
