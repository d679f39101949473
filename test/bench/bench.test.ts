// gyre bench end to end on the tiny demo model: in-process, against gyre serve, through the
// SageMaker runtime SDK and `gyre endpoint`, and against a minimal OpenAI-compatible server
// started here. Each run writes its JSON, SVG and PNG.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BenchResult } from '../../src/bench/report';
import { main } from '../../src/cli/main';
import { take } from '../../src/bench/workload';
import { plan, run } from '../../src/cli/commands/bench';
import { endpoint } from '../sagemaker/helpers';
import { demoModel, startTestServer, type TestServer } from '../server/helpers';

let tmp: string;
let model: string;
let server: TestServer;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-bench-'));
  model = demoModel();
  server = await startTestServer();
});

// The table and the "wrote" lines are not under test here.
beforeEach(() => {
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterEach(() => jest.restoreAllMocks());

afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const small = { concurrency: '1,2', requests: 3, warmup: 1, maxPromptTokens: 120, maxOutputTokens: 12, quiet: true };

/** Output tokens the levels asked for: requests 1..3 at N=1 and 4..6 at N=2 (request 0 warms up). */
function requested(opts: Record<string, unknown>): number[] {
  const { workload } = plan({ ...small, ...opts });
  const sum = (a: number, b: number) => take(workload, b).slice(a).reduce((s, r) => s + r.outputTokens, 0);
  return [sum(1, 4), sum(4, 7)];
}

function readResult(out: string): BenchResult {
  const result = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult;
  const base = out.replace(/\.json$/, '');
  expect(fs.readFileSync(`${base}.svg`, 'utf8')).toMatch(/^<svg[^]*<polyline[^]*<\/svg>\n$/);
  expect(fs.readFileSync(`${base}.png`).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(result.machine.cores).toBeGreaterThan(0);
  expect(result.machine.cpu).not.toBe('');
  expect(result.commit).toMatch(/^[0-9a-f]{7,}|unknown/);
  expect(result.settings).toMatchObject({ concurrency: '1,2', requests: 3 });
  return result;
}

function expectExact(result: BenchResult, want: number[]): void {
  const [t] = result.targets;
  expect(t.levels.map((l) => l.concurrency)).toEqual([1, 2]);
  for (const [i, l] of t.levels.entries()) {
    expect(l).toMatchObject({ requests: 3, errors: 0, output_tokens: want[i] });
    expect(l.ttft_ms.p50).toBeGreaterThan(0);
    expect(l.ttft_ms.p50).toBeLessThanOrEqual(l.latency_ms.p50);
    expect(l.tpot_ms.mean).toBeGreaterThanOrEqual(0);
    expect(l.requests_per_s).toBeGreaterThan(0);
    expect(l.load_avg_1m).toBeGreaterThanOrEqual(0);
  }
}

test('in-process: every request gets exactly its output length', async () => {
  const out = path.join(tmp, 'in-process.json');
  await run({ ...small, inProcess: true, model, threads: 1, out });
  const result = readResult(out);
  expect(result.targets[0]).toMatchObject({ name: 'gyre (in-process)', kind: 'in-process', settings: { threads: 1, backend: 'cpu' } });
  expect(result.model).toMatchObject({ hidden_size: 64, vocab_size: 32000 });
  expect(result.targets[0].requests_sent).toBe(7);
  expect(result.workload).toMatchObject({ requests: 7, repeated_prompts: false });
  expectExact(result, requested({ model }));
});

test('gyre serve over HTTP (through the CLI), merged with the in-process run: ratios and HTTP overhead', async () => {
  const out = path.join(tmp, 'served.json');
  const argv = ['node', 'gyre', 'bench', '--url', server.url, '--model', model, '--concurrency', '1,2', '--requests', '3',
    '--max-prompt-tokens', '120', '--max-output-tokens', '12', '--quiet',
    '--merge', path.join(tmp, 'in-process.json'), '--out', out];
  expect(await main(argv)).toBe(0);
  const result = readResult(out);
  expect(result.targets.map((t) => t.kind)).toEqual(['url', 'in-process']);
  expectExact(result, requested({ model }));
  expect(result.comparison?.map((r) => r.http_overhead === undefined)).toEqual([false, false]);
});

test('SageMaker runtime SDK, streaming, through gyre endpoint', async () => {
  const ep = await endpoint(server.url);
  try {
    const out = path.join(tmp, 'sagemaker.json');
    await run({ ...small, sagemakerEndpoint: 'gyre-local', endpointUrl: `http://127.0.0.1:${ep.port}`, model, out });
    const result = readResult(out);
    expect(result.targets[0]).toMatchObject({ kind: 'sagemaker-endpoint', name: 'SageMaker gyre-local' });
    expectExact(result, requested({ model }));
  } finally {
    await ep.close();
  }
});

test('any OpenAI-compatible server: asks for exact lengths, streams, counts errors', async () => {
  const bodies: Record<string, unknown>[] = [];
  const fake = http.createServer((req, res) => {
    // llama-server's /props says what it is; the bench records it as the target's version.
    if (req.method === 'GET') {
      if (req.url === '/props') res.end(JSON.stringify({ build_info: 'b42-abc1234', total_slots: 2, default_generation_settings: { n_ctx: 512 } }));
      else res.writeHead(404).end();
      return;
    }
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', async () => {
      const body = JSON.parse(raw);
      bodies.push({ url: req.url, ...body });
      if (bodies.length === 3) { res.writeHead(500).end('{"error":{"message":"boom"}}'); return; }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < body.max_tokens; i++) {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, text: ` t${i}` }] })}\n\n`);
        await new Promise((r) => setTimeout(r, 1));
      }
      res.write(`data: ${JSON.stringify({ choices: [], usage: { completion_tokens: body.max_tokens } })}\n\ndata: [DONE]\n\n`);
      res.end();
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const out = path.join(tmp, 'openai.json');
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1`;
    await run({ ...small, openaiUrl: url, servedModel: 'some/model', label: 'fake vLLM', out });
    const result = readResult(out);
    expect(result.targets[0]).toMatchObject({ name: 'fake vLLM', kind: 'openai-url', version: 'llama.cpp b42-abc1234',
      settings: { total_slots: 2, n_ctx_per_slot: 512 } });
    const [n1, n2] = result.targets[0].levels;
    expect(n1).toMatchObject({ requests: 2, errors: 1 });
    expect(n1.error_samples[0]).toMatch(/HTTP 500.*boom/);
    expect(n2).toMatchObject({ requests: 3, errors: 0 });
    expect(bodies).toHaveLength(7);
    for (const b of bodies) {
      expect(b).toMatchObject({ url: '/v1/completions', model: 'some/model', stream: true, ignore_eos: true, temperature: 0 });
      expect(b.min_tokens).toBe(b.max_tokens);
      expect(b.max_tokens).toBeLessThanOrEqual(12);
    }
  } finally {
    fake.close();
  }
});

test('no target, or a target where nothing succeeds, is an error that says why', async () => {
  await expect(run({ ...small })).rejects.toThrow(/--url, --openai-url, --sagemaker-endpoint or --in-process/);
  const out = path.join(tmp, 'down.json');
  await expect(run({ ...small, concurrency: '1', requests: 1, warmup: 0, url: 'http://127.0.0.1:1', out }))
    .rejects.toThrow(/gyre serve \(HTTP\): no request succeeded \(fetch failed/);
  expect(JSON.parse(fs.readFileSync(out, 'utf8')).targets[0].levels[0]).toMatchObject({ requests: 0, errors: 1 });
});
