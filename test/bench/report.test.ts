// The comparison against llama-server (issue 19): levels of one target joined across the
// interleaved runs' files, grouped by the model's weight type, Gyre / llama-server per level,
// the goals met or missed, and llama-bench's figures beside Gyre's. No engine, no server: the
// result files are written here.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compareEngines, type EngineRuns, formatEngineRows, readEngineRuns } from '../../src/bench/engine_peer';
import {
  type BenchResult, checkGoals, compare, formatComparison, formatGoals, mergeResults, type TargetResult,
} from '../../src/bench/report';
import { summarize } from '../../src/bench/runner';
import { main } from '../../src/cli/main';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-report-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A level of `tokens` output tokens over 10 s, with the load average it ended at. */
function level(n: number, tokensPerS: number, load?: number) {
  const samples = [{ index: 0, start: 0, ttft: 100, e2e: 1000, outputTokens: tokensPerS * 10 }];
  return { ...summarize(n, samples, 10), ...(load === undefined ? {} : { load_avg_1m: load }) };
}

/** One `gyre bench` run's file: one target, one level, the model's dtype in config's words. */
function runFile(name: string, kind: string, dtype: 'float16' | 'float32', n: number, tps: number, load?: number): string {
  const file = path.join(tmp, `${kind}-${dtype}-${n}.json`);
  const result: BenchResult = {
    tool: 'test', date: '', commit: 'x', settings: { seed: n },
    machine: { cpu: 'c', cores: 2, memory_gib: 1, os: '', node: '', load_avg_1m: 9.5 },
    model: { torch_dtype: dtype }, workload: {},
    targets: [{ name, kind, version: kind === 'openai-url' ? 'llama.cpp b1-80fb11a' : undefined, levels: [level(n, tps, load)], requests_sent: 3 }],
  };
  fs.writeFileSync(file, JSON.stringify(result));
  return file;
}

const empty = (): BenchResult => ({ tool: 'test', date: '', commit: 'x', settings: {}, machine: { cpu: 'c', cores: 2, memory_gib: 1,
  os: '', node: '', load_avg_1m: 0 }, workload: {}, targets: [] });

/** gyre serve and llama-server, f16 and f32, levels 1 and 16, interleaved as cpu_compare.sh runs them. */
function interleaved(): string[] {
  const files: string[] = [];
  for (const [dtype, [g1, l1, g16, l16]] of [['float16', [90, 60, 200, 90]], ['float32', [40, 50, 100, 40]]] as const) {
    files.push(runFile('gyre serve (HTTP)', 'url', dtype, 1, g1, 0.4), runFile('llama-server (built from source)', 'openai-url', dtype, 1, l1, 0.6));
    files.push(runFile('gyre serve (HTTP)', 'url', dtype, 16, g16, 1.2), runFile('llama-server (built from source)', 'openai-url', dtype, 16, l16));
  }
  return files;
}

test('merge joins one target\'s levels across files, per weight type, each level with its load average', () => {
  const merged = mergeResults(empty(), interleaved());
  const brief = (t: TargetResult) => [t.name, t.group, t.levels.map((l) => [l.concurrency, l.output_tokens_per_s, l.load_avg_1m])];
  expect(merged.targets.map(brief)).toEqual([
    ['gyre serve (HTTP)', 'f16', [[1, 90, 0.4], [16, 200, 1.2]]],
    ['llama-server (built from source)', 'f16', [[1, 60, 0.6], [16, 90, 9.5]]],   // no load of its own: the file's
    ['gyre serve (HTTP)', 'f32', [[1, 40, 0.4], [16, 100, 1.2]]],
    ['llama-server (built from source)', 'f32', [[1, 50, 0.6], [16, 40, 9.5]]],
  ]);
  expect(merged.targets[0].settings?.from).toEqual(['url-float16-1.json', 'url-float16-16.json']);
  expect(merged.targets[0].requests_sent).toBe(6);
  expect(merged.targets[1].version).toBe('llama.cpp b1-80fb11a');
});

test('Gyre / llama-server per level and the issue\'s goals (>= 1.5x at 1 user, >= 2x at 16), met or missed', () => {
  const rows = compare(mergeResults(empty(), interleaved()).targets);
  expect(rows.map((r) => [r.group, r.concurrency, r.served_over_server_peer, r.load_avg_1m])).toEqual([
    ['f16', 1, 1.5, 0.6], ['f16', 16, 200 / 90, 9.5], ['f32', 1, 0.8, 0.6], ['f32', 16, 2.5, 9.5],
  ]);
  const goals = checkGoals(rows, 'llama-server (built from source)');
  expect(goals.map((g) => [g.goal, g.met])).toEqual([
    ['f16: gyre serve >= 1.5x llama-server (built from source) output tokens/s at 1 user', true],
    ['f16: gyre serve >= 2x llama-server (built from source) output tokens/s at 16 users', true],
    ['f32: gyre serve >= 1.5x llama-server (built from source) output tokens/s at 1 user', false],
    ['f32: gyre serve >= 2x llama-server (built from source) output tokens/s at 16 users', true],
    ['HTTP overhead < 5% (worst N)', undefined],
  ]);
  expect(formatGoals(goals)).toMatch(/^MISS {2}f32: gyre serve >= 1\.5x .* at 1 user: 0\.80x$/m);
  const table = formatComparison(rows, { serverPeer: 'llama-server' });
  expect(table.split('\n')[0]).toMatch(/^model +N +gyre serve tok\/s +llama-server tok\/s +gyre serve \/ llama-server +gyre serve TTFT p50 +llama-server TTFT p50 +load 1m$/);
  expect(table).toMatch(/^f32 +1 +40\.0 +50\.0 +0\.80x +100 ms +100 ms +0\.60$/m);
});

test('without a server peer the in-process goals stay; a missing level is n/a, not met', () => {
  const inproc: TargetResult = { name: 'gyre', kind: 'in-process', levels: [level(1, 50)] };
  const peer: TargetResult = { name: 'llama.cpp', kind: 'peer', levels: [level(1, 40)] };
  const goals = checkGoals(compare([inproc, peer]));
  expect(goals.map((g) => [g.goal.slice(0, 22), g.met])).toEqual([
    ['single-stream output t', true], ['aggregate output token', undefined], ['HTTP overhead < 5% (wo', undefined]]);
});

const runs: EngineRuns = {
  llama_cpp_commit: '80fb11ac73e66d89eae2c6a91d8a77428fa733ed',
  llama_bench: [
    { dtype: 'f16', n_prompt: 512, n_gen: 0, flash_attn: 0, avg_ts: 800 },
    { dtype: 'f16', n_prompt: 512, n_gen: 0, flash_attn: 1, avg_ts: 1000 },
    { dtype: 'f16', n_prompt: 0, n_gen: 128, flash_attn: 1, avg_ts: 100 },
  ],
  gyre_decode_bench: [500, 700, 600].flatMap((pp) => [
    { dtype: 'f16', batch: 1, prompt: 512, tokens: 1, prefill_tokens_per_s: pp, decode_tokens_per_s: 1 },
    { dtype: 'f16', batch: 1, prompt: 1, tokens: 128, prefill_tokens_per_s: 1, decode_tokens_per_s: pp / 5 },
    { dtype: 'f32', batch: 1, prompt: 512, tokens: 1, prefill_tokens_per_s: 1, decode_tokens_per_s: 1 },
  ]),
  llama_batched_bench: [{ dtype: 'f16', pp: 32, tg: 64, pl: 16, speed_tg: 400, speed: 300 }],
  gyre_batch_bench: [{ dtype: 'f16', prompt_tokens: 32, new_tokens: 64, levels: [{ concurrency: 16, tokens_per_s: 1, decode_tokens_per_s: 500 }] }],
};

test('llama-bench pp512 / tg128 and llama-batched-bench beside Gyre\'s runs of the same test (median of Gyre\'s)', () => {
  expect(compareEngines(runs)).toEqual([
    { dtype: 'f16', test: 'pp512', peer_variant: 'no flash attention', gyre_tokens_per_s: 600, peer_tokens_per_s: 800, gyre_over_peer: 0.75 },
    { dtype: 'f16', test: 'pp512', peer_variant: 'flash attention', gyre_tokens_per_s: 600, peer_tokens_per_s: 1000, gyre_over_peer: 0.6 },
    { dtype: 'f16', test: 'tg128', peer_variant: 'flash attention', gyre_tokens_per_s: 120, peer_tokens_per_s: 100, gyre_over_peer: 1.2 },
    { dtype: 'f16', test: 'batched decode 32+64 x16', gyre_tokens_per_s: 500, peer_tokens_per_s: 400, gyre_over_peer: 1.25 },
  ]);
});

test('gyre bench --merge --engine-file: the ratios printed and kept in the JSON; a bad engine file is refused by name', async () => {
  const engineFile = path.join(tmp, 'engine.json');
  fs.writeFileSync(engineFile, JSON.stringify(runs));
  const out = path.join(tmp, 'merged.json');
  let printed = '';
  jest.spyOn(process.stdout, 'write').mockImplementation((s) => { printed += String(s); return true; });
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await main(['node', 'gyre', 'bench', '--merge', interleaved().join(','), '--engine-file', engineFile, '--out', out])).toBe(0);
  } finally {
    jest.restoreAllMocks();
  }
  const result = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult;
  expect(result.engine?.peer).toBe('llama.cpp 80fb11a');
  expect(result.engine?.rows).toHaveLength(4);
  expect(result.goals?.filter((g) => g.met === false).map((g) => g.goal)).toEqual([
    'f32: gyre serve >= 1.5x llama-server output tokens/s at 1 user']);
  expect(printed).toMatch(/gyre serve \/ llama-server  /);
  expect(printed).toMatch(/^MISS  f32: gyre serve >= 1\.5x llama-server output tokens\/s at 1 user: 0\.80x$/m);
  expect(printed).toMatch(/^f16 +pp512 +600\.0 +1000\.0 +0\.60x +flash attention$/m);
  expect(fs.readFileSync(out.replace(/json$/, 'svg'), 'utf8')).toContain('llama-server (built from source) f16 (llama.cpp b1-80fb11a)');
  expect(formatEngineRows(result.engine!)).toMatch(/^model +test +gyre tok\/s +llama\.cpp 80fb11a tok\/s +gyre \/ llama\.cpp/);

  fs.writeFileSync(engineFile, '[1, 2]');
  expect(() => readEngineRuns(engineFile)).toThrow(/--engine-file .*engine\.json: expected an object with llama_cpp_commit/);
  expect(() => readEngineRuns(path.join(tmp, 'nope.json'))).toThrow(/--engine-file .*nope\.json: ENOENT/);
});
