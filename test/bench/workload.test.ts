// The bench workload, the level statistics and the plot: no engine, no server.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ticks, renderSvg } from '../../src/bench/plot';
import { checkGoals, compare, type TargetResult } from '../../src/bench/report';
import { distribution, percentile, summarize } from '../../src/bench/runner';
import { chatWorkload, fileWorkload, generateWorkload, readWorkload, rng, SYSTEM_PROMPT } from '../../src/bench/workload';
import { Tokenizer } from '../../src/engine/tokenizer';

const ROOT = path.resolve(__dirname, '..', '..');
const tokenizer = new Tokenizer(
  JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'tokenizers', 'llama-2.tokenizer.json'), 'utf8')),
  { bos_token: '<s>', eos_token: '</s>' });

describe('workload', () => {
  const w = generateWorkload(tokenizer, { seed: 1, numPrompts: 120 });

  test('deterministic for a seed; another seed gives other requests', () => {
    expect(generateWorkload(tokenizer, { seed: 1, numPrompts: 120 })).toEqual(w);
    const other = generateWorkload(tokenizer, { seed: 2, numPrompts: 120 });
    expect(other.map((r) => r.prompt)).not.toEqual(w.map((r) => r.prompt));
    expect(rng(5)()).toBe(rng(5)());
    // Request i does not depend on which requests were drawn before it.
    expect(chatWorkload(tokenizer, { seed: 1 }).at(77)).toEqual(w[77]);
  });

  test('lengths follow the documented distribution within the caps', () => {
    const p = w.map((r) => r.promptTokens);
    const o = w.map((r) => r.outputTokens);
    expect(Math.max(...p)).toBeLessThanOrEqual(960);
    expect(Math.min(...o)).toBeGreaterThanOrEqual(8);
    expect(Math.max(...o)).toBeLessThanOrEqual(80);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    expect(median(o)).toBeGreaterThan(30);   // lognormal median 40
    expect(median(o)).toBeLessThan(52);
    expect(median(p)).toBeGreaterThan(150);  // user median 200, plus the template and half with a system prompt
    expect(median(p)).toBeLessThan(400);
    expect(new Set(p).size).toBeGreaterThan(60);
    // Token counts are the tokenizer's own for the rendered prompt, BOS included.
    for (const r of w.slice(0, 10)) expect(tokenizer.encode(r.prompt).length).toBe(r.promptTokens);
  });

  test('a shared system prompt on about half; tighter caps are kept', () => {
    const sys = w.filter((r) => r.system !== undefined);
    expect(sys.length).toBeGreaterThan(40);
    expect(sys.length).toBeLessThan(80);
    for (const r of sys) expect(r.prompt.startsWith(`[INST] <<SYS>>\n${SYSTEM_PROMPT}\n<</SYS>>\n\n`)).toBe(true);
    const none = generateWorkload(tokenizer, { seed: 1, numPrompts: 30, systemFraction: 0, maxPromptTokens: 100, maxOutputTokens: 10 });
    expect(none.every((r) => r.system === undefined && r.promptTokens <= 100 && r.outputTokens <= 10)).toBe(true);
  });

  test('a cap tighter than the system prompt: no system prompt, every prompt within the cap', () => {
    const small = generateWorkload(tokenizer, { seed: 3, numPrompts: 40, maxPromptTokens: 64 });
    expect(small.every((r) => r.promptTokens <= 64 && r.user.length > 0 && r.system === undefined)).toBe(true);
  });

  test('JSONL prompts: "prompt" as is, "user"/"system" rendered, output_tokens kept', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-wl-')), 'w.jsonl');
    fs.writeFileSync(file, '{"prompt":"Hello there","output_tokens":7}\n\n{"user":"Hi","system":"Be brief."}\n');
    const r = readWorkload(file, tokenizer, { seed: 0 });
    expect(r).toHaveLength(2);
    expect(r[0]).toMatchObject({ prompt: 'Hello there', outputTokens: 7, promptTokens: tokenizer.encode('Hello there').length });
    expect(r[1].prompt).toBe('[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]');
    expect(r[1].outputTokens).toBeGreaterThanOrEqual(8);
    const wrapped = fileWorkload(file, tokenizer);
    expect(wrapped.size).toBe(2);
    expect(wrapped.at(2)).toEqual(wrapped.at(0));
    fs.writeFileSync(file, '{"prompt":"ok"}\nnot json\n');
    expect(() => readWorkload(file, tokenizer)).toThrow(/:2: not JSON/);
  });
});

describe('statistics', () => {
  test('percentiles (nearest rank) and the mean', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 0.5)).toBe(50);
    expect(percentile(xs, 0.99)).toBe(99);
    expect(distribution([3, 1, 2])).toEqual({ mean: 2, p50: 2, p99: 3 });
  });

  test('a level: throughput, TTFT and TPOT from samples; errors counted apart', () => {
    const r = summarize(2, [
      { index: 0, start: 0, ttft: 100, e2e: 1000, outputTokens: 10 },
      { index: 1, start: 0, ttft: 300, e2e: 2100, outputTokens: 10 },
      { index: 2, start: 0, e2e: 5, outputTokens: 0, error: 'HTTP 500: boom' },
    ], 4);
    expect(r).toMatchObject({ requests: 2, errors: 1, error_samples: ['HTTP 500: boom'], requests_per_s: 0.5, output_tokens_per_s: 5 });
    expect(r.latency_ms.mean).toBe(1550);
    expect(r.ttft_ms.p50).toBe(100);
    expect(r.tpot_ms.mean).toBeCloseTo((100 + 200) / 2);
  });
});

const level = (n: number, rps: number, tps: number, lat: number) => summarize(n, Array.from({ length: 4 }, (_, i) =>
  ({ index: i, start: 0, ttft: 1, e2e: lat, outputTokens: tps / rps })), 4 / rps);

describe('comparison and plot', () => {
  const targets: TargetResult[] = [
    { name: 'gyre (in-process)', kind: 'in-process', levels: [level(1, 1, 40, 1000), level(16, 4, 160, 4000)] },
    { name: 'gyre serve (HTTP)', kind: 'url', levels: [level(1, 0.98, 39.2, 1020), level(16, 3.6, 144, 4400)] },
    { name: 'llama.cpp', kind: 'peer', version: 'v0', levels: [level(1, 0.5, 20, 2000), level(16, 1, 40, 16000)] },
  ];

  test('ratios, HTTP overhead and goals', () => {
    const rows = compare(targets);
    expect(rows.map((r) => r.concurrency)).toEqual([1, 16]);
    expect(rows[0].gyre_over_peer).toBeCloseTo(2);
    expect(rows[1].gyre_over_peer).toBeCloseTo(4);
    expect(rows[0].http_overhead).toBeCloseTo(0.02);
    expect(rows[1].http_overhead).toBeCloseTo(0.1);
    expect(checkGoals(rows).map((g) => g.met)).toEqual([true, true, false]);
  });

  test('SVG: one curve per target, points labelled with N; round axis ticks', () => {
    const svg = renderSvg(targets, 'a <title>');
    expect(svg.match(/<polyline/g)).toHaveLength(3);
    expect(svg.match(/N=16/g)).toHaveLength(3);
    expect(svg).toContain('llama.cpp (v0)');
    expect(svg).toContain('a &lt;title&gt;');
    expect(ticks(3.7)).toEqual([0, 1, 2, 3, 4]);
    expect(ticks(0.37)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
  });
});

describe('where bench writes and what the plot says', () => {
  test('without --out the files go into bench-results/, not the current folder', async () => {
    const { defaultOut } = (await import('../../src/cli/commands/bench')) as unknown as { defaultOut(stamp: string): string };
    expect(defaultOut('20261206T120000')).toBe(path.join('bench-results', 'gyre-bench-20261206T120000.json'));
  });

  test('the plot title names the model (and its shape) first, then the machine', async () => {
    const { plotTitle } = await import('../../src/cli/commands/bench');
    const machine = { cpu: 'Intel(R) Xeon(R) Platinum 8488C', cores: 2 };
    const title = plotTitle({ machine, model: { path: '/m/demo', model_type: 'llama', num_hidden_layers: 2, hidden_size: 64, torch_dtype: 'float16' } } as never);
    expect(title).toBe('demo (llama, 2 layers, hidden 64, float16): throughput vs latency on Intel(R) Xeon(R) Platinum 8488C, 2 cores');
    expect(plotTitle({ machine, model: { served_model: 'gyre' } } as never)).toMatch(/^gyre: throughput vs latency/);
  });
});
