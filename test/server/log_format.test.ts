// One log format for every command: serve, endpoint and progress lines are all pino
// lines with a level label, an ISO time and service "gyre"; EMF lines only when there is
// something to report.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { jsonLineLog } from '../../src/model/progress';
import { EmfReporter } from '../../src/server/emf';
import { createLogger } from '../../src/server/logger';
import { ROOT, post, startTestServer } from './helpers';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const shape = { level: 'info', time: expect.stringMatching(ISO), service: 'gyre' };

function capture(): { sink: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { sink, lines };
}

test('serve\'s logger: level label, ISO time, service', () => {
  const { sink, lines } = capture();
  createLogger(sink).info({ port: 1 }, 'listening');
  expect(lines[0]).toMatchObject({ ...shape, msg: 'listening' });
});

test('progress lines (download, upload, make-model) are the same pino lines, on stderr', () => {
  let err = '';
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
  try {
    jsonLineLog({ event: 'download', bytes: 10, total_bytes: 20 });
  } finally {
    spy.mockRestore();
  }
  expect(JSON.parse(err.trim())).toMatchObject({ ...shape, event: 'download', bytes: 10, msg: 'download' });
});

test('gyre endpoint logs the same shape (needs `npm run build:ts`)', async () => {
  const main = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(main)) throw new Error('dist/ is not built: run `npm run build:ts`');
  const proc = spawn(process.execPath, [main, 'endpoint', '--target', 'http://127.0.0.1:9', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
    });
  });
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
  expect(JSON.parse(first)).toMatchObject({ ...shape, component: 'endpoint' });
});

describe('EMF lines', () => {
  const idle = { numRunning: 0, numWaiting: 0, numBlocksUsed: 0, numBlocksTotal: 10, numPromptTokens: 5, numGeneratedTokens: 7, numPreemptions: 0, prefixCacheHitTokens: 0 };

  test('nothing is written while idle; a request, or work still running, makes one line', () => {
    const { sink, lines } = capture();
    let stats = { ...idle };
    const emf = new EmfReporter(createLogger(sink), () => 'demo', () => stats as never);
    emf.flush();
    emf.flush();
    expect(lines).toHaveLength(0);
    emf.record({ route: '/invocations', status: 200, e2eS: 0.5 });
    emf.flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'metrics', Requests: 1, Model: 'demo' });
    emf.flush();
    expect(lines).toHaveLength(1);
    stats = { ...idle, numRunning: 2, numGeneratedTokens: 40 };
    emf.flush();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ Requests: 0, RunningRequests: 2, GenerationTokens: 33 });
  });
});

test('with EMF off (outside SageMaker, by default), not even shutdown writes an EMF line', async () => {
  const t = await startTestServer({ emfIntervalMs: 0 });
  expect((await post(`${t.url}/generate`, { inputs: 'hi', parameters: { max_new_tokens: 2 } })).status).toBe(200);
  await t.close();
  expect(t.logs.filter((l) => l.msg === 'metrics' || l._aws)).toEqual([]);
  expect(t.logs.at(-1)?.msg).toBe('stopped');
});
