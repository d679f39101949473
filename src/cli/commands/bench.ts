// gyre bench: N concurrent users against each target, for each N; a table, a JSON result and a
// throughput-against-latency plot (see src/bench/). Options (camelCased by commander):
//   url? openaiUrl? sagemakerEndpoint? endpointUrl? region? inProcess? model? servedModel?
//   concurrency (list), requests? duration?, warmup, workload?, seed,
//   maxPromptTokens, maxOutputTokens, systemFraction, threads?, label?, merge?, engineFile?, out?, quiet?
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatEngineRows, readEngineRuns } from '../../bench/engine_peer';
import { writePlot } from '../../bench/plot';
import {
  type BenchResult, checkGoals, compare, comparisonNames, dtypeGroup, formatComparison, formatGoals, formatTable, gitCommit, machineInfo, mergeResults, modelInfo,
  type TargetResult, writeResult,
} from '../../bench/report';
import { type LevelPlan, Runner } from '../../bench/runner';
import { InProcessTarget, OpenAITarget, SageMakerTarget, type Target } from '../../bench/targets';
import {
  chatWorkload, describeWorkload, DISTRIBUTION, fileWorkload, MAX_OUTPUT_TOKENS, take, type Workload,
} from '../../bench/workload';
import { Tokenizer } from '../../engine/tokenizer';

const ROOT = path.join(__dirname, '..', '..', '..');

function parseList(v: string): number[] {
  const ns = v.split(',').map((s) => Number(s.trim()));
  if (!ns.length || ns.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`--concurrency: expected e.g. 1,2,4,8 (got ${v})`);
  return ns;
}

function workloadTokenizer(model?: string): Tokenizer {
  if (model && fs.existsSync(path.join(model, 'tokenizer.json'))) return Tokenizer.fromModelDir(model);
  const json = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'tokenizers', 'llama-2.tokenizer.json'), 'utf8'));
  return new Tokenizer(json, { bos_token: '<s>', eos_token: '</s>' });
}

/** The prompt cap: 960, and prompt + output within the model's context. */
function promptCap(opts: Record<string, unknown>): number {
  const cap = (opts.maxPromptTokens as number | undefined) ?? 960;
  const model = opts.model as string | undefined;
  const cfg = model && path.join(model, 'config.json');
  if (!cfg || !fs.existsSync(cfg)) return cap;
  const ctx = JSON.parse(fs.readFileSync(cfg, 'utf8')).max_position_embeddings as number;
  return Math.min(cap, ctx - Math.min((opts.maxOutputTokens as number | undefined) ?? MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS));
}

/** Builds the levels, the workload and the targets from the options; shared with the peer runner. */
export function plan(opts: Record<string, unknown>): { levels: LevelPlan[]; workload: Workload; settings: Record<string, unknown> & { warmup: number } } {
  const ns = parseList(String(opts.concurrency ?? '1,2,4,8,16'));
  const durationS = opts.duration as number | undefined;
  const fixed = opts.requests as number | undefined;
  const levels = ns.map((n) => (durationS !== undefined ? { concurrency: n, durationS } : { concurrency: n, requests: fixed ?? Math.max(8, 4 * n) }));
  const warmup = (opts.warmup as number | undefined) ?? 1;
  const wopts = {
    seed: (opts.seed as number | undefined) ?? 0,
    maxPromptTokens: promptCap(opts),
    maxOutputTokens: (opts.maxOutputTokens as number | undefined) ?? MAX_OUTPUT_TOKENS,
    systemFraction: (opts.systemFraction as number | undefined) ?? 0.5,
  };
  const tokenizer = opts.workload && !opts.model ? undefined : workloadTokenizer(opts.model as string | undefined);
  const workload = opts.workload ? fileWorkload(String(opts.workload), tokenizer, wopts) : chatWorkload(tokenizer!, wopts);
  const settings = { ...opts, levels, warmup, workload_options: wopts, distribution: DISTRIBUTION } as Record<string, unknown> & { warmup: number };
  return { levels, workload, settings };
}

function progressLine(name: string, quiet: boolean) {
  return (p: { concurrency: number; done: number; total?: number; errors: number; elapsedS: number }) => {
    if (quiet) return;
    const of = p.total !== undefined ? `/${p.total}` : '';
    const line = `${name}  N=${p.concurrency}  ${p.done}${of} requests  ${p.errors} errors  ${p.elapsedS.toFixed(0)} s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K`);
  };
}

/** Runs every level against one target; the result keeps the target's own settings. */
export async function benchTarget(target: Target, workload: Workload, levels: LevelPlan[], warmup: number,
                                  quiet = false): Promise<TargetResult> {
  const runner = new Runner(target, workload, progressLine(target.name, quiet));
  await target.beforeLevel?.(levels[0].concurrency);
  await runner.warmup(warmup);
  const result: TargetResult = { name: target.name, kind: target.kind, address: target.address, levels: [] };
  for (const [i, level] of levels.entries()) {
    if (i > 0) await target.beforeLevel?.(level.concurrency);
    const r = await runner.run(level);
    result.levels.push(r);
    if (!quiet) {
      process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}${target.name}  N=${r.concurrency}: ${r.requests} ok, ${r.errors} errors, ` +
        `${r.requests_per_s.toFixed(3)} req/s, ${r.output_tokens_per_s.toFixed(1)} tok/s, e2e mean ${(r.latency_ms.mean / 1000).toFixed(2)} s` +
        `${r.errors ? ` (first error: ${r.error_samples[0]})` : ''}\n`);
    }
  }
  result.requests_sent = runner.cursor;
  return result;
}

/** Lengths of the requests the targets were sent; whether a file workload had to repeat. */
export function workloadSummary(workload: Workload, targets: TargetResult[]): Record<string, unknown> {
  const sent = Math.max(0, ...targets.map((t) => t.requests_sent ?? 0));
  return { ...describeWorkload(take(workload, Math.max(1, sent))), repeated_prompts: workload.size !== undefined && sent > workload.size };
}

/** The model first (with its shape, when its folder was given), then the machine. */
export function plotTitle(result: BenchResult): string {
  const m = result.machine;
  const model = (result.model ?? {}) as Record<string, unknown>;
  const name = model.path ? path.basename(String(model.path)) : String(model.served_model ?? 'model');
  const shape = model.num_hidden_layers
    ? ` (${model.model_type}, ${model.num_hidden_layers} layers, hidden ${model.hidden_size}, ${model.torch_dtype})` : '';
  return `${name}${shape}: throughput vs latency on ${m.cpu}, ${m.cores} cores`;
}

/** Without --out: a results folder, so runs do not litter the current one. */
export function defaultOut(stamp: string): string {
  return path.join('bench-results', `gyre-bench-${stamp}.json`);
}

/** Writes the JSON, the SVG and the PNG; prints the table (and the comparison, when there is one). */
export async function finish(result: BenchResult, out: string): Promise<void> {
  result.comparison = compare(result.targets);
  const hasPair = result.comparison.some((r) => r.served_over_server_peer !== undefined || r.gyre_over_peer !== undefined
    || r.served_over_peer !== undefined || r.http_overhead !== undefined);
  const names = comparisonNames(result.targets);
  if (hasPair) result.goals = checkGoals(result.comparison, names.serverPeer);
  else delete result.comparison;
  writeResult(out, result);
  const base = out.replace(/\.json$/, '');
  const plots = await writePlot(base, result.targets, plotTitle(result));
  process.stdout.write(formatTable(result.targets));
  if (result.comparison) {
    process.stdout.write('\n' + formatComparison(result.comparison, names) + '\n' + formatGoals(result.goals ?? []));
  }
  if (result.engine?.rows.length) process.stdout.write('\n' + formatEngineRows(result.engine));
  process.stderr.write(`gyre: wrote ${out}, ${plots.join(', ')}\n`);
}

export async function run(opts: Record<string, unknown>): Promise<void> {
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
  const quiet = Boolean(opts.quiet);
  const makers: (() => Promise<Target>)[] = [];
  const label = (fallback: string) => (opts.label as string | undefined) ?? fallback;
  const model = (opts.servedModel as string | undefined) ?? 'gyre';
  if (opts.inProcess) {
    if (!opts.model) throw new Error('--in-process needs --model');
    makers.push(() => InProcessTarget.load(label('gyre (in-process)'), String(opts.model), opts.threads as number | undefined));
  }
  if (opts.url) makers.push(async () => new OpenAITarget(label('gyre serve (HTTP)'), 'url', String(opts.url), model));
  if (opts.openaiUrl) makers.push(async () => new OpenAITarget(label('OpenAI-compatible'), 'openai-url', String(opts.openaiUrl), model));
  if (opts.sagemakerEndpoint) {
    const name = String(opts.sagemakerEndpoint);
    makers.push(async () => new SageMakerTarget(label(`SageMaker ${name}`), name, opts.endpointUrl as string | undefined, opts.region as string | undefined));
  }
  const merge = opts.merge ? String(opts.merge).split(',').filter(Boolean) : [];
  if (!makers.length && !merge.length) throw new Error('give a target: --url, --openai-url, --sagemaker-endpoint or --in-process (or --merge)');
  if (makers.length > 1 && opts.label) throw new Error('--label names a single target');

  const engine = opts.engineFile ? readEngineRuns(String(opts.engineFile)) : undefined;
  const { levels, workload, settings } = plan(opts);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const out = (opts.out as string | undefined) ?? defaultOut(stamp);
  let result: BenchResult = {
    tool: `gyre bench ${version}`, date: new Date().toISOString(), commit: gitCommit(ROOT), machine: machineInfo(),
    model: opts.model ? modelInfo(String(opts.model)) : { served_model: model },
    settings, workload: {}, targets: [],
  };
  for (const make of makers) {
    const target = await make();
    try {
      const r = await benchTarget(target, workload, levels, settings.warmup, quiet);
      r.version = `gyre ${version}`;
      if (target instanceof OpenAITarget && target.kind === 'openai-url') {
        const info = await target.serverInfo();
        if (info.version) r.version = info.version; else delete r.version;
        if (info.settings) r.settings = info.settings;
      }
      const group = dtypeGroup(result.model);
      if (group !== undefined) r.group = group;
      if (target instanceof InProcessTarget) r.settings = { threads: opts.threads ?? 0, backend: target.backend };
      result.targets.push(r);
    } finally {
      await target.close();
    }
  }
  result = mergeResults(result, merge);
  if (engine) result.engine = engine;
  result.workload = workloadSummary(workload, result.targets);   // merged runs share the workload options
  await finish(result, out);
  const failed = result.targets.find((t) => t.levels.length && t.levels.every((l) => l.requests === 0));
  if (failed) throw new Error(`${failed.name}: no request succeeded (${failed.levels[0].error_samples[0] ?? 'no error message'})`);
}
