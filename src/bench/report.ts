// The result file of `gyre bench` (and of the llama.cpp peer runner, which writes the same
// shape), the table printed after a run, and the side-by-side comparison of targets.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LevelResult } from './runner';

export interface TargetResult {
  name: string;
  kind: string;
  address?: string;
  version?: string;
  settings?: Record<string, unknown>;   // threads, backend, context options ...
  requests_sent?: number;               // warm-up included: the workload's first requests_sent
  levels: LevelResult[];
}

export interface BenchResult {
  tool: string;
  date: string;
  commit: string;
  machine: Machine;
  model?: Record<string, unknown>;
  settings: Record<string, unknown>;
  workload: Record<string, unknown>;
  targets: TargetResult[];
  comparison?: ComparisonRow[];
  goals?: Goal[];
}

export interface Machine { cpu: string; cores: number; memory_gib: number; os: string; node: string; load_avg_1m: number }

export function machineInfo(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) cpu = line.split(':')[1].trim();
  } catch { /* not Linux */ }
  return {
    cpu, cores: os.cpus().length, memory_gib: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`, node: process.version, load_avg_1m: os.loadavg()[0],
  };
}

export function gitCommit(dir = process.cwd()): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** config.json's shape, for the result file. */
export function modelInfo(dir: string): Record<string, unknown> {
  const info: Record<string, unknown> = { path: path.resolve(dir) };
  const cfgFile = path.join(dir, 'config.json');
  if (fs.existsSync(cfgFile)) {
    const c = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    for (const k of ['model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
      'intermediate_size', 'vocab_size', 'max_position_embeddings', 'torch_dtype']) info[k] = c[k];
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// The table

const f = (x: number, d = 1, unit = '') => (Number.isFinite(x) ? x.toFixed(d) + unit : '-');

export function formatTable(targets: TargetResult[]): string {
  const head = ['target', 'N', 'req', 'err', 'req/s', 'out tok/s', 'prompt tok/s', 'e2e mean', 'e2e p50', 'e2e p99', 'ttft p50', 'tpot p50'];
  const rows = targets.flatMap((t) => t.levels.map((l) => [
    t.name, String(l.concurrency), String(l.requests), String(l.errors), f(l.requests_per_s, 3),
    f(l.output_tokens_per_s), f(l.prompt_tokens_per_s ?? NaN, 0),
    f(l.latency_ms.mean / 1000, 2, 's'), f(l.latency_ms.p50 / 1000, 2, 's'), f(l.latency_ms.p99 / 1000, 2, 's'),
    f(l.ttft_ms.p50, 1, 'ms'), f(l.tpot_ms.p50, 1, 'ms'),
  ]));
  return formatRows([head, ...rows]);
}

function formatRows(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Side by side: Gyre against the peer, and the server against the engine

export interface ComparisonRow {
  concurrency: number;
  gyre_tokens_per_s?: number;          // in-process
  served_tokens_per_s?: number;        // gyre serve over HTTP
  peer_tokens_per_s?: number;
  gyre_over_peer?: number;             // in-process / peer, output tokens/s
  served_over_peer?: number;           // served / peer
  http_overhead?: number;              // 1 - served / in-process
}

export function compare(targets: TargetResult[]): ComparisonRow[] {
  const byKind = (k: string) => targets.find((t) => t.kind === k);
  const inproc = byKind('in-process');
  const served = byKind('url');
  const peer = byKind('peer');
  const ns = [...new Set(targets.flatMap((t) => t.levels.map((l) => l.concurrency)))].sort((a, b) => a - b);
  const tps = (t: TargetResult | undefined, n: number) => t?.levels.find((l) => l.concurrency === n)?.output_tokens_per_s;
  return ns.map((n) => {
    const g = tps(inproc, n);
    const s = tps(served, n);
    const p = tps(peer, n);
    return {
      concurrency: n, gyre_tokens_per_s: g, served_tokens_per_s: s, peer_tokens_per_s: p,
      gyre_over_peer: g !== undefined && p ? g / p : undefined,
      served_over_peer: s !== undefined && p ? s / p : undefined,
      http_overhead: g && s !== undefined ? 1 - s / g : undefined,
    };
  });
}

export function formatComparison(rows: ComparisonRow[], peerName = 'peer'): string {
  const o = (x?: number, d = 1, unit = '') => (x === undefined ? '-' : x.toFixed(d) + unit);
  const pct = (x?: number) => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);
  return formatRows([
    ['N', 'gyre tok/s', 'served tok/s', `${peerName} tok/s`, `gyre/${peerName}`, `served/${peerName}`, 'HTTP overhead'],
    ...rows.map((r) => [String(r.concurrency), o(r.gyre_tokens_per_s), o(r.served_tokens_per_s), o(r.peer_tokens_per_s),
      o(r.gyre_over_peer, 2, 'x'), o(r.served_over_peer, 2, 'x'), pct(r.http_overhead)]),
  ]);
}

export interface Goal { goal: string; value?: number; met?: boolean }

/** The issue's targets: N=1 tokens/s >= the peer's, 16 users >= 3x the peer's, HTTP overhead < 5%. */
export function checkGoals(rows: ComparisonRow[]): Goal[] {
  const at = (n: number) => rows.find((r) => r.concurrency === n);
  const overheads = rows.map((r) => r.http_overhead).filter((x): x is number => x !== undefined);
  const worst = overheads.length ? Math.max(...overheads) : undefined;
  const g = (goal: string, value: number | undefined, ok: (v: number) => boolean): Goal =>
    ({ goal, value, met: value === undefined ? undefined : ok(value) });
  return [
    g('single-stream output tokens/s >= peer (ratio at N=1)', at(1)?.gyre_over_peer, (v) => v >= 1),
    g('aggregate output tokens/s at 16 users >= 3x peer (ratio at N=16)', at(16)?.gyre_over_peer, (v) => v >= 3),
    g('HTTP overhead < 5% (worst N)', worst, (v) => v < 0.05),
  ];
}

export function formatGoals(goals: Goal[]): string {
  return goals.map((g) => `${g.met === undefined ? 'n/a ' : g.met ? 'MET ' : 'MISS'}  ${g.goal}: ` +
    `${g.value === undefined ? '-' : g.goal.startsWith('HTTP') ? `${(g.value * 100).toFixed(1)}%` : `${g.value.toFixed(2)}x`}`).join('\n') + '\n';
}

/** Adds other result files' targets (their own settings kept) to a result. */
export function mergeResults(base: BenchResult, files: string[]): BenchResult {
  const merged = { ...base, targets: [...base.targets] };
  for (const file of files) {
    const other = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResult;
    for (const t of other.targets) {
      merged.targets.push({ ...t, settings: { ...other.settings, ...t.settings, from: path.basename(file),
        load_avg_1m_after: other.machine.load_avg_1m } });
    }
  }
  return merged;
}

export function writeResult(file: string, result: BenchResult): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
}
