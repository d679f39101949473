// The llama.cpp peer runner (bench/peers/llama-cpp/bench.mjs) on the tiny model: same workload,
// exact output lengths, the result file gyre bench writes. Skips when the peer is not installed.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BenchResult } from '../../src/bench/report';
import { take } from '../../src/bench/workload';
import { plan } from '../../src/cli/commands/bench';
import { convertToGguf } from '../../src/model/gguf';
import { makeModel } from '../../src/model/make_model';

const ROOT = path.resolve(__dirname, '..', '..');
const PEER = path.join(ROOT, 'bench', 'peers', 'llama-cpp');
const HAS_PEER = fs.existsSync(path.join(PEER, 'node_modules', 'node-llama-cpp'))
  && fs.existsSync(path.join(ROOT, 'dist', 'cli', 'commands', 'bench.js'));   // the runner imports dist/

if (!HAS_PEER) console.warn('SKIPPED: llama.cpp peer runner (needs `npm run build:ts` and `npm ci` in bench/peers/llama-cpp)');

(HAS_PEER ? test : test.skip)('llama.cpp peer: N sequences per level, exactly the requested output tokens', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-peer-'));
  try {
    const model = path.join(tmp, 'tiny');
    makeModel({ shape: 'tiny', out: model, seed: 1 });
    convertToGguf({ model, out: path.join(tmp, 'tiny.gguf') });
    const out = path.join(tmp, 'peer.json');
    execFileSync(process.execPath, [path.join(PEER, 'bench.mjs'), '--gguf', path.join(tmp, 'tiny.gguf'), '--model', model,
      '--threads', '1', '--concurrency', '1,2', '--requests', '3', '--max-output-tokens', '12', '--quiet', '--out', out],
    { stdio: ['ignore', 'ignore', 'pipe'] });
    const result = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult;
    const [t] = result.targets;
    expect(t).toMatchObject({ name: 'llama.cpp', kind: 'peer', requests_sent: 7 });
    expect(t.version).toMatch(/^\S+ \(node-llama-cpp 3\.21\.1\)$/);
    const { workload } = plan({ model, concurrency: '1,2', requests: 3, maxOutputTokens: 12 });
    const want = (a: number, b: number) => take(workload, b).slice(a).reduce((s, r) => s + r.outputTokens, 0);
    expect(t.levels.map((l) => [l.concurrency, l.requests, l.errors, l.output_tokens])).toEqual([[1, 3, 0, want(1, 4)], [2, 3, 0, want(4, 7)]]);
    expect(fs.existsSync(path.join(tmp, 'peer.png'))).toBe(true);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
