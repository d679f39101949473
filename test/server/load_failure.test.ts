// `gyre serve` with a model that cannot load (needs `npm run build:ts`): it logs the reason and
// exits 1, as TGI does, so SageMaker fails the endpoint at once instead of at the health-check
// timeout; --stay-up-on-load-failure (GYRE_STAY_UP_ON_LOAD_FAILURE) keeps it up with /ping 503.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, get, waitFor } from './helpers';
import { collectJsonLines } from './json_lines';

const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

interface Child { proc: ChildProcess; logs: Record<string, unknown>[]; exited: Promise<number | null> }
const children: Child[] = [];
afterAll(() => { for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL'); });

function serve(args: string[], env: Record<string, string> = {}): Child {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'server', 'server.js'))) throw new Error('dist/ is not built: run `npm run build:ts`');
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--host', '127.0.0.1', '--backend', 'cpu', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  collectJsonLines(proc.stdout!, logs);
  // 'close', not 'exit': the last log lines may still be in the pipe when the process exits.
  const c = { proc, logs, exited: new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code))) };
  children.push(c);
  return c;
}

test('a missing model folder: the reason is logged and the process exits 1', async () => {
  const c = serve(['--model', '/nonexistent/model']);
  expect(await c.exited).toBe(1);
  const failed = c.logs.find((l) => l.level === 'error');
  expect(failed?.msg).toMatch(/the model failed to load: --model=\/nonexistent\/model: not a folder/);
  expect(c.logs.at(-1)?.msg).toMatch(/exiting/);
});

test('a model that fails validation exits 1 too, naming the file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-badmodel-'));
  fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["GPT2LMHeadModel"]}');
  try {
    const c = serve([], { GYRE_MODEL: dir });
    expect(await c.exited).toBe(1);
    expect(String(c.logs.find((l) => l.level === 'error')?.msg)).toContain(`GYRE_MODEL=${dir}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('GYRE_STAY_UP_ON_LOAD_FAILURE=1 keeps the server up with /ping 503 and the reason', async () => {
  const c = serve(['--model', '/nonexistent/model'], { GYRE_STAY_UP_ON_LOAD_FAILURE: '1' });
  await waitFor(() => c.logs.some((l) => l.level === 'error'), 10_000, 'the load failure');
  const port = c.logs.find((l) => l.msg === 'listening')!.port as number;
  const ping = await get(`http://127.0.0.1:${port}/ping`);
  expect(ping.status).toBe(503);
  expect(ping.json.error).toMatch(/not a folder/);
  expect(c.proc.exitCode).toBeNull();
  c.proc.kill('SIGTERM');
  expect(await c.exited).toBe(0);
});
