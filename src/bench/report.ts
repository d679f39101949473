// The result file of `gyre bench` (and of the llama.cpp peer runner, which writes the same
// shape), the table printed after a run, and the side-by-side comparison of targets.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EngineComparison } from './engine_peer';
import type { LevelResult } from './runner';

export interface TargetResult {
  name: string;
  kind: string;
  address?: string;
  version?: string;
  settings?: Record<string, unknown>;   // threads, backend, context options ...
  group?: string;                       // compared within: the model's weight type (f16, f32)
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
  engine?: EngineComparison;            // prefill/decode against llama-bench (--engine-file)
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

/** A target's name with its group (f16, f32) and, for a peer, its version. */
export function targetLabel(t: TargetResult): string {
  const version = (t.kind === 'peer' || t.kind === 'openai-url') && t.version ? ` (${t.version})` : '';
  return `${t.name}${t.group ? ` ${t.group}` : ''}${version}`;
}

const f = (x: number, d = 1, unit = '') => (Number.isFinite(x) ? x.toFixed(d) + unit : '-');

export function formatTable(targets: TargetResult[]): string {
  const head = ['target', 'model', 'N', 'req', 'err', 'req/s', 'out tok/s', 'prompt tok/s', 'e2e mean', 'e2e p50', 'e2e p99', 'ttft p50', 'tpot p50'];
  const rows = targets.flatMap((t) => t.levels.map((l) => [
    t.name, t.group ?? '-', String(l.concurrency), String(l.requests), String(l.errors), f(l.requests_per_s, 3),
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
// Side by side: Gyre against the peer, and the server against the engine. Targets are compared
// within a group (the model's weight type, f16 or f32), level by level.

export interface ComparisonRow {
  group?: string;                      // the weight type both sides ran
  concurrency: number;
  served_tokens_per_s?: number;        // gyre serve over HTTP
  server_peer_tokens_per_s?: number;   // the peer's own server over HTTP (llama-server built from source)
  served_over_server_peer?: number;    // gyre serve / the peer's server: the headline ratio
  served_ttft_p50_ms?: number;
  server_peer_ttft_p50_ms?: number;
  gyre_tokens_per_s?: number;          // Gyre in-process
  peer_tokens_per_s?: number;          // a peer in-process (node-llama-cpp's prebuilt library)
  gyre_over_peer?: number;             // in-process / in-process peer
  served_over_peer?: number;           // served / in-process peer
  http_overhead?: number;              // 1 - served / in-process
  load_avg_1m?: number;                // the highest of the level's targets, when they recorded it
}

/** config.json's torch_dtype as a short group name: float16 -> f16. */
export function dtypeGroup(model?: Record<string, unknown>): string | undefined {
  const t = model?.torch_dtype;
  if (typeof t !== 'string') return undefined;
  return ({ float16: 'f16', float32: 'f32', bfloat16: 'bf16' } as Record<string, string>)[t] ?? t;
}

export function compare(targets: TargetResult[]): ComparisonRow[] {
  const groups = [...new Set(targets.map((t) => t.group))];
  return groups.flatMap((group) => {
    const mine = targets.filter((t) => t.group === group);
    const byKind = (k: string) => mine.find((t) => t.kind === k);
    const inproc = byKind('in-process');
    const served = byKind('url');
    const server = byKind('openai-url');
    const peer = byKind('peer');
    const ns = [...new Set(mine.flatMap((t) => t.levels.map((l) => l.concurrency)))].sort((a, b) => a - b);
    const level = (t: TargetResult | undefined, n: number) => t?.levels.find((l) => l.concurrency === n);
    const tps = (t: TargetResult | undefined, n: number) => level(t, n)?.output_tokens_per_s;
    const ratio = (a?: number, b?: number) => (a !== undefined && b ? a / b : undefined);
    return ns.map((n) => {
      const g = tps(inproc, n);
      const s = tps(served, n);
      const v = tps(server, n);
      const p = tps(peer, n);
      const loads = mine.map((t) => level(t, n)?.load_avg_1m).filter((x): x is number => x !== undefined);
      const row: ComparisonRow = {
        group, concurrency: n, served_tokens_per_s: s, server_peer_tokens_per_s: v, served_over_server_peer: ratio(s, v),
        served_ttft_p50_ms: server ? level(served, n)?.ttft_ms.p50 : undefined, server_peer_ttft_p50_ms: level(server, n)?.ttft_ms.p50,
        gyre_tokens_per_s: g, peer_tokens_per_s: p, gyre_over_peer: ratio(g, p), served_over_peer: ratio(s, p),
        http_overhead: g && s !== undefined ? 1 - s / g : undefined,
        load_avg_1m: loads.length ? Math.max(...loads) : undefined,
      };
      if (group === undefined) delete row.group;
      return row;
    });
  });
}

/** Names of the compared targets, for the column heads. */
export interface ComparisonNames { serverPeer?: string; peer?: string }

export function comparisonNames(targets: TargetResult[]): ComparisonNames {
  // Without the label's parenthesis ("llama-server (built from source)"): the table stays readable.
  const short = (t?: TargetResult) => t?.name.replace(/\s*\(.*\)$/, '') || t?.name;
  return { serverPeer: short(targets.find((t) => t.kind === 'openai-url')), peer: short(targets.find((t) => t.kind === 'peer')) };
}

/** The table of ratios; columns that no row fills are left out. */
export function formatComparison(rows: ComparisonRow[], names: ComparisonNames | string = {}): string {
  const { serverPeer = 'server peer', peer = 'peer' } = typeof names === 'string' ? { peer: names } : names;
  const o = (x?: number, d = 1, unit = '') => (x === undefined ? '-' : x.toFixed(d) + unit);
  const pct = (x?: number) => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);
  const cols: [string, (r: ComparisonRow) => string][] = [
    ['model', (r) => r.group ?? '-'],
    ['N', (r) => String(r.concurrency)],
    ['gyre serve tok/s', (r) => o(r.served_tokens_per_s)],
    [`${serverPeer} tok/s`, (r) => o(r.server_peer_tokens_per_s)],
    [`gyre serve / ${serverPeer}`, (r) => o(r.served_over_server_peer, 2, 'x')],
    ['gyre serve TTFT p50', (r) => o(r.served_ttft_p50_ms, 0, ' ms')],
    [`${serverPeer} TTFT p50`, (r) => o(r.server_peer_ttft_p50_ms, 0, ' ms')],
    ['gyre in-process tok/s', (r) => o(r.gyre_tokens_per_s)],
    [`${peer} tok/s`, (r) => o(r.peer_tokens_per_s)],
    [`in-process / ${peer}`, (r) => o(r.gyre_over_peer, 2, 'x')],
    [`gyre serve / ${peer}`, (r) => o(r.served_over_peer, 2, 'x')],
    ['HTTP overhead', (r) => pct(r.http_overhead)],
    ['load 1m', (r) => o(r.load_avg_1m, 2)],
  ];
  const kept = cols.filter(([, cell], i) => i === 1 || rows.some((r) => cell(r) !== '-'));
  return formatRows([kept.map(([h]) => h), ...rows.map((r) => kept.map(([, cell]) => cell(r)))]);
}

export interface Goal { goal: string; value?: number; met?: boolean }

/**
 * Issue 19's targets against the peer's own server, per model group: gyre serve >= 1.5x its
 * output tokens/s at 1 user and >= 2x at 16 users (the chat workload). Without a server peer,
 * the earlier in-process targets (>= 1x at N=1, >= 3x at N=16). HTTP overhead < 5% either way.
 */
export function checkGoals(rows: ComparisonRow[], serverPeer = 'llama-server'): Goal[] {
  const g = (goal: string, value: number | undefined, ok: (v: number) => boolean): Goal =>
    ({ goal, value, met: value === undefined ? undefined : ok(value) });
  const goals: Goal[] = [];
  if (rows.some((r) => r.served_over_server_peer !== undefined)) {
    for (const group of [...new Set(rows.map((r) => r.group))]) {
      const at = (n: number) => rows.find((r) => r.group === group && r.concurrency === n)?.served_over_server_peer;
      const on = group === undefined ? '' : `${group}: `;
      goals.push(g(`${on}gyre serve >= 1.5x ${serverPeer} output tokens/s at 1 user`, at(1), (v) => v >= 1.5));
      goals.push(g(`${on}gyre serve >= 2x ${serverPeer} output tokens/s at 16 users`, at(16), (v) => v >= 2));
    }
  } else {
    const at = (n: number) => rows.find((r) => r.concurrency === n);
    goals.push(g('single-stream output tokens/s >= peer (ratio at N=1)', at(1)?.gyre_over_peer, (v) => v >= 1));
    goals.push(g('aggregate output tokens/s at 16 users >= 3x peer (ratio at N=16)', at(16)?.gyre_over_peer, (v) => v >= 3));
  }
  const overheads = rows.map((r) => r.http_overhead).filter((x): x is number => x !== undefined);
  goals.push(g('HTTP overhead < 5% (worst N)', overheads.length ? Math.max(...overheads) : undefined, (v) => v < 0.05));
  return goals;
}

export function formatGoals(goals: Goal[]): string {
  return goals.map((g) => `${g.met === undefined ? 'n/a ' : g.met ? 'MET ' : 'MISS'}  ${g.goal}: ` +
    `${g.value === undefined ? '-' : g.goal.startsWith('HTTP') ? `${(g.value * 100).toFixed(1)}%` : `${g.value.toFixed(2)}x`}`).join('\n') + '\n';
}

/**
 * Adds other result files' targets (their own settings kept) to a result. A target with the
 * same name, kind and group as one already there is the same target run level by level (the
 * interleaved comparison runs one level per file): its levels are appended to that one.
 */
export function mergeResults(base: BenchResult, files: string[]): BenchResult {
  const merged = { ...base, targets: [...base.targets] };
  for (const file of files) {
    const other = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResult;
    for (const t of other.targets) {
      const group = t.group ?? dtypeGroup(other.model);
      const levels = t.levels.map((l) => ({ ...l, load_avg_1m: l.load_avg_1m ?? other.machine.load_avg_1m }));
      const same = merged.targets.find((x) => x.name === t.name && x.kind === t.kind && x.group === group);
      if (same) {
        same.levels = [...same.levels, ...levels];
        same.requests_sent = (same.requests_sent ?? 0) + (t.requests_sent ?? 0);
        const from = same.settings?.from;
        same.settings = { ...same.settings, from: [...(Array.isArray(from) ? from : [from]), path.basename(file)] };
        continue;
      }
      const target: TargetResult = { ...t, levels, settings: { ...other.settings, ...t.settings, from: path.basename(file),
        load_avg_1m_after: other.machine.load_avg_1m } };
      if (group !== undefined) target.group = group;
      merged.targets.push(target);
    }
  }
  return merged;
}

export function writeResult(file: string, result: BenchResult): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
}
