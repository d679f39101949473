// Benchmark: /ping latency of `gyre serve` while clients stream completions with logprobs
// (n=4, logprobs 20, 24 clients), and RSS while clients misbehave (non-reading streams, bodies
// that never finish). The server runs on the demo model in a
// child process. test/server/logprobs_load.test.ts uses logprobsLoad with a loose bound.
//
//   npx tsc -p tsconfig.json && npx tsc --outDir dist/bench-ping --rootDir . --module commonjs \
//     --target es2022 --esModuleInterop --skipLibCheck --types node bench/ping_under_load.ts
//   node dist/bench-ping/bench/ping_under_load.js [out.json]
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface PingStats { count: number; failed: number; p50: number; p99: number; max: number }

function stats(ms: number[], failed: number): PingStats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10 : NaN);
  return { count: ms.length + failed, failed, p50: at(0.5), p99: at(0.99), max: at(1) };
}

/** Pings every intervalMs while `during` runs; a ping slower than 2 s counts as failed. */
export async function pingWhile(url: string, during: Promise<unknown>, intervalMs = 100): Promise<PingStats> {
  const ms: number[] = [];
  let failed = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const ok = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) })
        .then(async (r) => { await r.text(); return r.status === 200; }, () => false);
      if (ok) ms.push(performance.now() - t0);
      else failed++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  await during;
  running = false;
  await loop;
  return stats(ms, failed);
}

/** `clients` workers, each streaming /v1/completions (n, logprobs) back to back for durationMs. */
export async function logprobsLoad(url: string, clients: number, durationMs: number,
                                   opts: { n?: number; logprobs?: number; maxTokens?: number } = {}): Promise<{ requests: number; errors: number }> {
  const end = Date.now() + durationMs;
  let requests = 0;
  let errors = 0;
  const body = JSON.stringify({
    prompt: 'The history of the river begins', stream: true, n: opts.n ?? 4, logprobs: opts.logprobs ?? 20,
    max_tokens: opts.maxTokens ?? 256, ignore_eos: true, temperature: 1,
  });
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < end) {
      try {
        const r = await fetch(`${url}/v1/completions`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
        const text = await r.text();
        if (r.status !== 200 || !text.endsWith('data: [DONE]\n\n')) errors++;
      } catch {
        errors++;
      }
      requests++;
    }
  }));
  return { requests, errors };
}

export interface Child { proc: ChildProcess; url: string; rssMib(): number; stop(): Promise<void> }

/** `gyre serve` (dist/) on the demo model, CPU backend; resolves once /ping is 200. */
export async function startServe(root: string, args: string[] = []): Promise<Child> {
  const proc = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'serve', '--model', path.join(root, 'models', 'demo'),
    '--port', '0', '--host', '127.0.0.1', ...args], { env: { ...process.env, GYRE_BACKEND: 'cpu', GYRE_EMF_INTERVAL: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      const m = /"port":(\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
  proc.stdout!.resume();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${url}/ping`).then((r) => r.status, () => 0)) === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    proc, url,
    rssMib: () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) / 1024,
    stop: async () => { proc.kill('SIGTERM'); await exited; },
  };
}

function rawSocket(url: string, data: string | Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(new URL(url).port), '127.0.0.1', () => { s.write(data); s.pause(); resolve(s); });
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Point 7: 64 clients stream chat with n=4, top_logprobs 20 and never read. */
async function nonReading(root: string): Promise<unknown> {
  const srv = await startServe(root);
  const before = srv.rssMib();
  const body = JSON.stringify({ messages: [{ role: 'user', content: 'Tell me everything.' }], stream: true, n: 4, logprobs: true,
    top_logprobs: 20, max_tokens: 1000, ignore_eos: true });
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  let peak = before;
  const sockets: net.Socket[] = [];
  const ping = pingWhile(srv.url, (async () => {
    for (let i = 0; i < 64; i++) sockets.push(await rawSocket(srv.url, head + body));
    for (let t = 0; t < 60; t++) { await sleep(500); peak = Math.max(peak, srv.rssMib()); }
  })());
  const pingStats = await ping;
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  const aborted = Number(/^gyre_slow_client_aborts_total (\d+)/m.exec(metrics)?.[1] ?? 0);
  sockets.forEach((s) => s.destroy());
  await sleep(5000);
  const after = srv.rssMib();
  await srv.stop();
  return { clients: 64, n: 4, top_logprobs: 20, max_tokens: 1000, window_s: 30, slow_client_aborts: aborted,
    rss_mib: { before: Math.round(before), peak: Math.round(peak), after_close_5s: Math.round(after) }, ping: pingStats };
}

/** Point 9: 100 POSTs each holding 5.99 MB of a declared 6 MB body. */
async function slowBodies(root: string): Promise<unknown> {
  const srv = await startServe(root);
  const before = srv.rssMib();
  const head = 'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 6000000\r\n\r\n';
  const sockets: net.Socket[] = [];
  const replies: string[] = [];
  let peak = before;
  const ping = pingWhile(srv.url, (async () => {
    for (let i = 0; i < 100; i++) {
      const s = await rawSocket(srv.url, head);
      s.resume();
      let reply = '';
      s.on('data', (d) => { reply += d; });
      s.on('close', () => replies.push(reply.split('\r\n')[0]));
      s.write(Buffer.alloc(5_990_000, 'a'));
      sockets.push(s);
    }
    for (let t = 0; t < 20; t++) { await sleep(500); peak = Math.max(peak, srv.rssMib()); }
  })());
  const pingStats = await ping;
  const held = srv.rssMib();
  sockets.forEach((s) => s.destroy());
  await sleep(3000);
  const after = srv.rssMib();
  await srv.stop();
  const statuses: Record<string, number> = {};
  for (const r of replies) statuses[r || '(none)'] = (statuses[r || '(none)'] ?? 0) + 1;
  return { bodies: 100, declared: 6_000_000, sent: 5_990_000, rss_mib: { before: Math.round(before), peak: Math.round(peak), held_10s: Math.round(held), after_close_3s: Math.round(after) }, replies_before_close: statuses, ping: pingStats };
}

async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..', '..');
  const out = process.argv[2];
  const idle = await startServe(root);
  const idlePing = await pingWhile(idle.url, sleep(5000));
  const rssIdle = idle.rssMib();
  await idle.stop();

  const srv = await startServe(root);
  let load: unknown;
  const loadPing = await pingWhile(srv.url, logprobsLoad(srv.url, 24, 30_000).then((r) => { load = r; }));
  await srv.stop();
  const result = {
    machine: `${os.cpus()[0].model}, ${os.cpus().length} cores, shared with other engineers' builds and tests`,
    node: process.version,
    idle: { ping: idlePing, rss_mib: Math.round(rssIdle) },
    logprobs_load: { clients: 24, n: 4, logprobs: 20, max_tokens: 256, duration_s: 30, ...(load as object), ping: loadPing },
    non_reading_clients: await nonReading(root),
    slow_bodies: await slowBodies(root),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`/ping under logprobs load: p50 ${loadPing.p50} ms, p99 ${loadPing.p99} ms, failed ${loadPing.failed}/${loadPing.count}\n`);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
