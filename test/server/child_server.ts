// `gyre serve` as a child process (needs `npm run build:ts`), for the tests where the server is
// put under load or hostile clients: a hang shows as a timeout, never as a stuck suite. Also a
// /ping watcher (each ping times out after 2 s, as SageMaker's do) and the child's RSS.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, demoModel, waitFor } from './helpers';
import { collectJsonLines } from './json_lines';

const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

export interface ChildServer {
  proc: ChildProcess;
  url: string;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  /** Resident memory of the child, in MiB (from /proc). */
  rssMib(): number;
  /** SIGTERM, then SIGKILL after timeoutMs. */
  stop(timeoutMs?: number): Promise<number | null>;
}

const children: ChildServer[] = [];
afterAll(() => { for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL'); });

/** Starts `gyre serve` on the demo model (CPU) and waits for /ping 200. */
export async function startChild(args: string[] = [], env: Record<string, string> = {}): Promise<ChildServer> {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'server', 'server.js'))) throw new Error('dist/ is not built: run `npm run build:ts`');
  const proc = spawn(process.execPath, [MAIN, 'serve', '--model', demoModel(), '--port', '0', '--host', '127.0.0.1', ...args],
    { env: { ...process.env, GYRE_BACKEND: 'cpu', GYRE_EMF_INTERVAL: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: Record<string, unknown>[] = [];
  collectJsonLines(proc.stdout!, logs);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const child: ChildServer = {
    proc, logs, exited, url: '',
    rssMib() {
      const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
    },
    async stop(timeoutMs = 30_000) {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  children.push(child);
  await waitFor(() => logs.some((l) => l.msg === 'listening'), 20_000, 'listening');
  child.url = `http://127.0.0.1:${logs.find((l) => l.msg === 'listening')!.port as number}`;
  await waitFor(async () => (await fetch(`${child.url}/ping`).then((r) => r.status, () => 0)) === 200, 60_000, '/ping 200');
  return child;
}

export interface PingStats { count: number; failed: number; p50: number; p99: number; max: number }

export function pingStats(ms: number[], failed: number): PingStats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN);
  return { count: ms.length + failed, failed, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1] : NaN };
}

/** Pings every intervalMs until stopped; a ping that takes 2 s or fails counts as failed. */
export function watchPing(url: string, intervalMs = 100): { stop(): Promise<PingStats> } {
  const ms: number[] = [];
  let failed = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const ok = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) }).then(async (r) => { await r.text(); return r.status === 200; }, () => false);
      if (ok) ms.push(performance.now() - t0);
      else failed++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return pingStats(ms, failed);
    },
  };
}

/** A Prometheus sample (with its labels, if any, as written) from the text at /metrics. */
export async function metricValue(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.split(' ')[1]) : 0;
}
