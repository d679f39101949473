// Running `gyre serve` (directly or through container/serve) on the demo model, for the container
// and endpoint tests. dist/ must be built (`npm test` runs build:ts first).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

/** Puts the demo model in dir: a copy of models/demo, or the same bytes made by make-model. */
export function demoModel(dir: string): string {
  const demo = path.join(ROOT, 'models', 'demo');
  if (fs.existsSync(path.join(demo, 'model.safetensors'))) {
    fs.cpSync(demo, dir, { recursive: true });
  } else {
    execFileSync(process.execPath, [CLI, 'make-model', '--shape', 'tiny', '--dtype', 'f16', '--seed', '7', '--out', dir]);
  }
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc { child: ChildProcess; output: () => string; exited: Promise<number | null> }

/** Spawns with output captured (shown when a test fails); env entries set to undefined are removed. */
export function start(cmd: string, args: string[], env: Record<string, string | undefined>): Proc {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
  // Its own process group, so stop() can clean up whatever it left behind.
  const child = spawn(cmd, args, { env: merged, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, output: () => out, exited };
}

/** GET url until it answers 200; returns every status seen (0: no connection). */
export async function waitFor200(url: string, timeoutMs: number, proc?: Proc): Promise<number[]> {
  const seen: number[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null) throw new Error(`exited ${proc.child.exitCode} before ${url} was 200:\n${proc.output()}`);
    const status = await fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
    if (seen[seen.length - 1] !== status) seen.push(status);
    if (status === 200) return seen;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not 200 within ${timeoutMs} ms (saw ${seen.join(', ')})${proc ? `:\n${proc.output()}` : ''}`);
}

/** SIGTERM to the process itself, then SIGKILL to anything left in its group. */
export async function stop(proc: Proc, timeoutMs = 30_000): Promise<number | null> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  const t = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(t);
  try {
    process.kill(-proc.child.pid!, 'SIGKILL');
  } catch {
    // the group is gone: nothing was left behind
  }
  return code;
}

/** `gyre serve` on the demo model, on the CPU backend, listening on a free port. */
export async function serveDemo(tmp: string): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const model = demoModel(path.join(tmp, 'model'));
  const proc = start(process.execPath, [CLI, 'serve', '--model', model, '--port', String(port)], {
    GYRE_BACKEND: 'cpu', GYRE_MODEL: undefined, HF_MODEL_ID: undefined, SAGEMAKER_BIND_TO_PORT: undefined,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor200(`${url}/ping`, 60_000, proc);
  return { proc, url };
}
