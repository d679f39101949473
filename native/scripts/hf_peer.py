#!/usr/bin/env python3
"""The transformers peer of gyre_bench, on the same GPU in the same device-check run.

On a model of the same shape as gyre_bench's (LlamaForCausalLM / MistralForCausalLM, fp16, random
normal weights of its own, made on the GPU, seeded), it measures:

  matmul    torch.matmul's fp16 rate on the prefill GEMM shapes: M = 512 and 2048 tokens times each
            linear layer of one decoder layer as gyre runs it (qkv fused [(nh + 2 nkv) d, H], o
            [H, nh d], gate_up fused [2I, H], down [H, I]; the same FLOPs as the unfused layers),
            CUDA events, median; plus one 8192^3 product as the card's peak. The ceiling for prefill.
  generate  plain model.generate at batch 1 (sdpa, dynamic cache): 512 prompt tokens, then
            decode ms/token = (time for 65 new tokens - time for 1) / 64.
  workload  continuous batching, attn_implementation "paged|sdpa", CUDA graphs on, fp16, greedy,
            EOS off, exactly output_tokens new tokens per request: the trace gyre_bench replays
            (--trace, JSON lines {prompt_tokens, output_tokens}; the same prompt token ids,
            3 + splitmix64(k << 20 | j) % (vocab - 3) for request number k), replayed for each N in
            --users by N closed-loop users, max(--min-requests, --requests-per-user x N) requests
            per level from one cursor across levels, after the same unmeasured warm-up.
            API: model.generate_batch() takes one max_new_tokens for all prompts and returns when
            all are done, so it cannot hold N users in a closed loop with per-request lengths. We use
            what generate_batch wraps: model.init_continuous_batching(...) -> ContinuousBatchingManager
            (warmup(), start(), add_request(input_ids, request_id, max_new_tokens,
            record_timestamps=True), get_result(), stop()). Latency = finish - created (the
            manager's own perf_counter stamps), TTFT = first token's stamp - created, TPOT =
            (last - first stamp) / (tokens - 1). If the manager or its CUDA-graph warm-up fails, it
            is made again with use_cuda_graph=False ("cuda_graph", "manager_errors"); if that fails
            too or the manager API is missing, each level falls back to one generate_batch call over
            the level's prompts with their mean output length (said in the JSON as "mode").
            API facts (transformers main, 2026, continuous_batching/continuous_api.py, requests.py,
            initialization.py): init_continuous_batching(generation_config, continuous_batching_config,
            workload_hints); ContinuousBatchingConfig(use_cuda_graph, max_batch_tokens, ...) from
            transformers.generation (>= 5.3); the manager prefixes the model's attention with "paged|";
            add_request(input_ids, request_id, max_new_tokens, streaming, record_timestamps,
            eos_token_id); GenerationOutput(request_id, generated_tokens, error, status,
            created_time, lifespan, timestamps), all stamps time.perf_counter().

Every phase's failure is recorded in the JSON ("<phase>_error") and the next phase runs; the JSON
is rewritten after every phase and level, so a run killed by a time limit keeps what it had.

The parts, one per phase, are in peer/: shapes (the model table), trace (the requests and their
prompt ids), model, phases (matmul, generate), workload and level_stats, compat (transformers
versions), cli.

usage: hf_peer.py --shape llama-2-7b [--layers N] [--trace FILE.jsonl] [--users 1,4,16,32,64]
                  [--requests-per-user 2] [--min-requests 8] [--phases matmul,generate,workload]
                  [--time-limit-s T] [--max-batch-tokens N] [--no-cuda-graph] --json OUT.json
"""
import os
import sys

from peer.cli import main

if __name__ == "__main__":
    rc = main(__doc__.split("\n")[0])
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: a continuous-batching thread that did not stop in time must not hold the process
    # (and the device-check's time budget) at interpreter exit; the JSON is already written.
    os._exit(rc)
