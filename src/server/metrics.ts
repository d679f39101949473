// Prometheus metrics (/metrics), named gyre_*. Per-request figures are observed as requests end;
// engine figures (running, waiting, KV blocks, token and cache counters) are read from
// engine.stats() whenever /metrics is scraped. One registry per server, so tests can run several.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NativeEngineStats } from '../engine/native';

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];
const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1];

export interface RequestFigures {
  route: string;
  status: number;
  e2eS: number;
  ttftS?: number;
  tpotS?: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'status'>;
  private readonly e2e: Histogram;
  private readonly ttft: Histogram;
  private readonly tpot: Histogram;
  private readonly slowClientAborts: Counter;
  private lastStats?: NativeEngineStats;

  constructor(private readonly stats: () => NativeEngineStats | undefined) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'gyre_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers });
    this.e2e = new Histogram({ name: 'gyre_e2e_request_latency_seconds', help: 'generation request latency, end to end', buckets: LATENCY_BUCKETS, registers });
    this.ttft = new Histogram({ name: 'gyre_time_to_first_token_seconds', help: 'time to the first generated token', buckets: LATENCY_BUCKETS, registers });
    this.slowClientAborts = new Counter({ name: 'gyre_slow_client_aborts_total', help: 'streams aborted because the client fell too far behind (GYRE_MAX_RESPONSE_BUFFER)', registers });
    this.tpot = new Histogram({ name: 'gyre_time_per_output_token_seconds', help: 'time per generated token after the first', buckets: TPOT_BUCKETS, registers });

    const self = this;
    const gauge = (name: string, help: string, read: (s: NativeEngineStats) => number) => new Gauge({
      name, help, registers,
      collect() { const s = self.engineStats(); if (s) this.set(read(s)); },
    });
    gauge('gyre_num_requests_running', 'sequences running in the engine', (s) => s.numRunning);
    gauge('gyre_num_requests_waiting', 'sequences waiting in the engine', (s) => s.numWaiting);
    gauge('gyre_kv_blocks_used', 'KV cache blocks held by sequences', (s) => s.numBlocksUsed);
    gauge('gyre_kv_blocks_total', 'KV cache blocks in the pool', (s) => s.numBlocksTotal);
    gauge('gyre_kv_blocks_cached', 'free KV blocks that hold a reusable prefix', (s) => s.numBlocksCached);
    gauge('gyre_kv_cache_usage_ratio', 'share of KV blocks in use', (s) => (s.numBlocksTotal ? s.numBlocksUsed / s.numBlocksTotal : 0));
    // Engine counters are cumulative: each scrape adds what changed since the last one.
    const counter = (name: string, help: string, read: (s: NativeEngineStats) => number) => {
      let seen = 0;
      return new Counter({
        name, help, registers,
        collect() {
          const s = self.engineStats();
          if (!s) return;
          const v = read(s);
          if (v > seen) this.inc(v - seen);
          seen = v;
        },
      });
    };
    counter('gyre_prompt_tokens_total', 'prompt tokens computed (not served from the prefix cache)', (s) => s.numPromptTokens);
    counter('gyre_generation_tokens_total', 'tokens generated', (s) => s.numGeneratedTokens);
    counter('gyre_preemptions_total', 'sequences preempted for lack of KV blocks', (s) => s.numPreemptions);
    counter('gyre_prefix_cache_hit_tokens_total', 'prompt tokens served from the prefix cache', (s) => s.prefixCacheHitTokens);
    counter('gyre_prefix_cache_query_tokens_total', 'prompt tokens looked up in the prefix cache', (s) => s.prefixCacheQueryTokens);
    counter('gyre_engine_steps_total', 'engine steps', (s) => s.numSteps);
  }

  /** Stats, read at most once per scrape (collect() runs once per metric). */
  private engineStats(): NativeEngineStats | undefined {
    return this.lastStats;
  }

  countRequest(route: string, status: number): void {
    this.requests.inc({ route, status: String(status) });
  }

  countSlowClientAbort(): void {
    this.slowClientAborts.inc();
  }

  observe(f: RequestFigures): void {
    this.e2e.observe(f.e2eS);
    if (f.ttftS !== undefined) this.ttft.observe(f.ttftS);
    if (f.tpotS !== undefined) this.tpot.observe(f.tpotS);
  }

  async text(): Promise<string> {
    this.lastStats = this.stats();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
