// CloudWatch Embedded Metric Format: every interval, one JSON log line whose `_aws` block tells
// CloudWatch Logs which fields are metrics. SageMaker routes only /ping and /invocations, so
// /metrics cannot be scraped there; these lines carry the same figures with no agent.
// Latencies are sent as up to 100 sampled values per line (EMF's limit), so CloudWatch can
// compute percentiles. An idle interval (no request ended, none running or waiting) writes nothing.
import type { NativeEngineStats } from '../engine/native';
import type { Logger } from './logger';
import type { RequestFigures } from './metrics';

const MAX_VALUES = 100;
export const EMF_NAMESPACE = 'Gyre';

class Reservoir {
  values: number[] = [];
  private seen = 0;

  add(v: number): void {
    this.seen++;
    if (this.values.length < MAX_VALUES) this.values.push(v);
    else {
      const i = Math.floor(Math.random() * this.seen);
      if (i < MAX_VALUES) this.values[i] = v;
    }
  }
}

export class EmfReporter {
  private requests = 0;
  private clientErrors = 0;
  private serverErrors = 0;
  private e2e = new Reservoir();
  private ttft = new Reservoir();
  private tpot = new Reservoir();
  private last?: NativeEngineStats;
  private timer?: NodeJS.Timeout;

  constructor(private readonly logger: Logger, private readonly model: () => string,
              private readonly stats: () => NativeEngineStats | undefined) {}

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  record(f: RequestFigures): void {
    this.requests++;
    if (f.status >= 500) this.serverErrors++;
    else if (f.status >= 400) this.clientErrors++;
    if (f.status < 400) {
      this.e2e.add(f.e2eS * 1000);
      if (f.ttftS !== undefined) this.ttft.add(f.ttftS * 1000);
      if (f.tpotS !== undefined) this.tpot.add(f.tpotS * 1000);
    }
  }

  /** Writes one EMF line for the interval just ended (none when it was idle), and starts the next. */
  flush(): void {
    const s = this.stats();
    if (this.requests === 0 && !s?.numRunning && !s?.numWaiting) {
      this.last = s ?? this.last;
      return;
    }
    const metrics: { Name: string; Unit: string }[] = [];
    const values: Record<string, number | number[]> = {};
    const put = (name: string, unit: string, v: number | number[]) => {
      if (Array.isArray(v) && v.length === 0) return;
      metrics.push({ Name: name, Unit: unit });
      values[name] = v;
    };
    put('Requests', 'Count', this.requests);
    put('ClientErrors', 'Count', this.clientErrors);
    put('ServerErrors', 'Count', this.serverErrors);
    put('E2ELatency', 'Milliseconds', this.e2e.values);
    put('TimeToFirstToken', 'Milliseconds', this.ttft.values);
    put('TimePerOutputToken', 'Milliseconds', this.tpot.values);
    if (s) {
      const prev = this.last;
      const delta = (read: (x: NativeEngineStats) => number) => Math.max(0, read(s) - (prev ? read(prev) : 0));
      put('RunningRequests', 'Count', s.numRunning);
      put('WaitingRequests', 'Count', s.numWaiting);
      put('KvCacheUsage', 'Percent', s.numBlocksTotal ? (100 * s.numBlocksUsed) / s.numBlocksTotal : 0);
      put('PromptTokens', 'Count', delta((x) => x.numPromptTokens));
      put('GenerationTokens', 'Count', delta((x) => x.numGeneratedTokens));
      put('Preemptions', 'Count', delta((x) => x.numPreemptions));
      put('PrefixCacheHitTokens', 'Count', delta((x) => x.prefixCacheHitTokens));
      this.last = s;
    }
    this.logger.info({
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [{ Namespace: EMF_NAMESPACE, Dimensions: [['Model']], Metrics: metrics }],
      },
      Model: this.model(),
      ...values,
    }, 'metrics');
    this.requests = this.clientErrors = this.serverErrors = 0;
    this.e2e = new Reservoir();
    this.ttft = new Reservoir();
    this.tpot = new Reservoir();
  }
}
