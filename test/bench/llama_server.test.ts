// llama.cpp's own llama-server, built from source by bench/peers/llama-cpp/build.sh, driven by
// `gyre bench --openai-url` as bench/cpu_compare.sh drives it: exactly the requested output
// tokens (max_tokens + ignore_eos; counted from the ids it returns, not only from its usage), and
// its build (number and commit) recorded. Skips, saying so, when the peer is not built.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BenchResult } from '../../src/bench/report';
import { take } from '../../src/bench/workload';
import { plan, run } from '../../src/cli/commands/bench';
import { convertToGguf } from '../../src/model/gguf';
import { makeModel } from '../../src/model/make_model';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'bench', 'peers', 'llama-cpp', 'build');
const SERVER = path.join(BUILD, 'bin', 'llama-server');
const HAS_SERVER = fs.existsSync(SERVER) && fs.existsSync(path.join(BUILD, 'commit.txt'));

if (!HAS_SERVER) console.warn('SKIPPED: llama-server peer (needs bench/peers/llama-cpp/build.sh)');

/** Starts llama-server on any free port; resolves with its URL once the model is loaded. A random
 *  model almost never samples EOS, so the server pushes EOS (id 2) up by default: only
 *  ignore_eos keeps a request going to its length. */
function startLlamaServer(gguf: string, parallel: number, ctx: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(SERVER, ['-m', gguf, '--host', '127.0.0.1', '--port', '0', '-t', '1', '-tb', '1', '--parallel', String(parallel),
    '--cont-batching', '-c', String(parallel * ctx), '--no-webui', '--logit-bias', '2+100'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(log);   // printed once the model is loaded
      if (m) resolve({ url: m[1], child });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`llama-server exited (${code}): ${log.slice(-2000)}`)));
  });
}

(HAS_SERVER ? test : test.skip)('llama-server: exactly the requested output tokens over /v1/completions; its commit recorded', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-llama-server-'));
  let child: ChildProcess | undefined;
  try {
    const model = path.join(tmp, 'tiny');
    makeModel({ shape: 'tiny', out: model, seed: 1 });
    convertToGguf({ model, out: path.join(tmp, 'tiny.gguf') });
    const server = await startLlamaServer(path.join(tmp, 'tiny.gguf'), 2, 512);
    child = server.child;

    // The ids it generated, counted one by one: random weights pick EOS and partial UTF-8 bytes too.
    const res = await fetch(`${server.url}/completion`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: '[INST] Hello [/INST]', n_predict: 37, ignore_eos: true, temperature: 0, return_tokens: true }) });
    const body = await res.json() as { tokens: number[]; tokens_predicted: number };
    expect([body.tokens.length, body.tokens_predicted]).toEqual([37, 37]);

    // Without ignore_eos the bias above ends it at once.
    const eos = await fetch(`${server.url}/completion`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: '[INST] Hello [/INST]', n_predict: 37, temperature: 0, return_tokens: true }) });
    expect((await eos.json() as { tokens: number[] }).tokens.length).toBeLessThan(37);

    const opts = { concurrency: '1,2', requests: 3, warmup: 1, maxPromptTokens: 120, maxOutputTokens: 12, quiet: true };
    const out = path.join(tmp, 'llama-server.json');
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true);   // the table
    jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await run({ ...opts, openaiUrl: server.url, model, label: 'llama-server (built from source)', out });
    } finally {
      jest.restoreAllMocks();
    }
    const result = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult;
    const [t] = result.targets;
    const commit = fs.readFileSync(path.join(BUILD, 'commit.txt'), 'utf8').trim();
    expect(t).toMatchObject({ kind: 'openai-url', group: 'f32', settings: { total_slots: 2, n_ctx_per_slot: 512 } });
    expect(t.version).toMatch(new RegExp(`^llama\\.cpp b\\d+-${commit.slice(0, 7)}`));
    const { workload } = plan({ ...opts, model });
    const want = (a: number, b: number) => take(workload, b).slice(a).reduce((s, r) => s + r.outputTokens, 0);
    expect(t.levels.map((l) => [l.concurrency, l.requests, l.errors, l.output_tokens])).toEqual([[1, 3, 0, want(1, 4)], [2, 3, 0, want(4, 7)]]);
  } finally {
    child?.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
