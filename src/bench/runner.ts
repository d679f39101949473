// N users against one target: each worker sends its next request as soon as its last one ends.
// A level runs a fixed number of requests, or issues requests for a fixed time (and then waits
// for those in flight). Requests come from one cursor over the workload that continues across
// levels, so no level repeats an earlier level's prompts (a prefix cache would make that cheap).
import * as os from 'node:os';
import type { Sample, Target } from './targets';
import type { BenchRequest, Workload } from './workload';

export interface LevelPlan {
  concurrency: number;
  requests?: number;           // fixed count ...
  durationS?: number;          // ... or seconds of issuing
}

export interface Distribution { mean: number; p50: number; p99: number }

export interface LevelResult {
  concurrency: number;
  requests: number;            // completed without error
  errors: number;
  error_samples: string[];
  duration_s: number;
  requests_per_s: number;
  output_tokens_per_s: number;
  output_tokens: number;
  prompt_tokens_per_s: number; // prompt tokens of the completed requests (the workload's count), per s
  latency_ms: Distribution;    // end to end
  ttft_ms: Distribution;       // time to first token
  tpot_ms: Distribution;       // (e2e - ttft) / (output tokens - 1), per request
  /** CPU seconds this process used during the level: with an in-process engine or peer, the
   *  engine's threads too, so tokens per CPU-second compare engines even on a busy machine. */
  process_cpu_s?: number;
  /** The 1-minute load average when the level ended: other work on the machine skews a level
   *  (llama.cpp's spinning threads most), so each level carries its own. */
  load_avg_1m?: number;
}

export type Progress = (p: { concurrency: number; done: number; total?: number; errors: number; elapsedS: number }) => void;

export function percentile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export function distribution(xs: number[]): Distribution {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || NaN);
  return { mean, p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
}

export function summarize(concurrency: number, samples: Sample[], durationS: number): LevelResult {
  const ok = samples.filter((s) => !s.error);
  const promptTokens = ok.reduce((a, s) => a + (s.promptTokens ?? 0), 0);
  const bad = samples.filter((s) => s.error);
  const tokens = ok.reduce((a, s) => a + s.outputTokens, 0);
  return {
    concurrency,
    requests: ok.length,
    errors: bad.length,
    error_samples: [...new Set(bad.map((s) => s.error!))].slice(0, 5),
    duration_s: durationS,
    requests_per_s: ok.length / durationS,
    output_tokens_per_s: tokens / durationS,
    output_tokens: tokens,
    prompt_tokens_per_s: promptTokens / durationS,
    latency_ms: distribution(ok.map((s) => s.e2e)),
    ttft_ms: distribution(ok.filter((s) => s.ttft !== undefined).map((s) => s.ttft!)),
    tpot_ms: distribution(ok.filter((s) => s.outputTokens > 1 && s.ttft !== undefined)
      .map((s) => (s.e2e - s.ttft!) / (s.outputTokens - 1))),
  };
}

export class Runner {
  /** Requests taken so far; past a file workload's size, prompts repeat. */
  cursor = 0;
  constructor(private readonly target: Target, private readonly workload: Workload, private readonly progress?: Progress) {}

  private next(): BenchRequest {
    return this.workload.at(this.cursor++);
  }

  /** Unmeasured requests, one after another (loads caches, JIT, connections). */
  async warmup(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const s = await this.target.send(this.next());
      if (s.error) throw new Error(`${this.target.name}: warm-up request failed: ${s.error}`);
    }
  }

  async run(plan: LevelPlan): Promise<LevelResult> {
    const { concurrency } = plan;
    const total = plan.requests;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const deadline = plan.durationS !== undefined ? t0 + plan.durationS * 1000 : Infinity;
    const samples: Sample[] = [];
    let issued = 0;
    let errors = 0;
    const report = () => this.progress?.({ concurrency, done: samples.length, total, errors, elapsedS: (performance.now() - t0) / 1000 });
    const timer = this.progress ? setInterval(report, 500) : undefined;
    const worker = async () => {
      while ((total === undefined || issued < total) && performance.now() < deadline) {
        issued++;
        const req = this.next();
        const s = await this.target.send(req);
        samples.push({ ...s, promptTokens: req.promptTokens });
        if (s.error) errors++;
      }
    };
    try {
      await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
      if (timer) clearInterval(timer);
    }
    report();
    const cpu = process.cpuUsage(cpu0);
    return { ...summarize(concurrency, samples, (performance.now() - t0) / 1000), process_cpu_s: (cpu.user + cpu.system) / 1e6,
      load_avg_1m: os.loadavg()[0] };
  }
}
