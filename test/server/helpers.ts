// Shared by the server tests: the demo model, an in-process server on a free port with its log
// lines captured, and small HTTP helpers (JSON, SSE, /metrics).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { makeModel } from '../../src/model/make_model';
import { DEFAULTS, type ServeConfig } from '../../src/server/config';
import { type GyreServer, type StartOptions, startServer } from '../../src/server/server';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DEMO = path.join(ROOT, 'models', 'demo');
export const REFERENCE = path.join(ROOT, 'test', 'fixtures', 'reference');

/** The bundled demo model (tiny, random weights, the real Llama-2 tokenizer); made if missing. */
export function demoModel(): string {
  if (!fs.existsSync(path.join(DEMO, 'model.safetensors'))) {
    makeModel({ shape: 'tiny', dtype: 'f16', seed: 7, out: DEMO });
  }
  return DEMO;
}

export function testConfig(over: Partial<ServeConfig> = {}): ServeConfig {
  return {
    model: demoModel(), modelFrom: 'test', host: '127.0.0.1', port: 0, backend: 'cpu',
    maxSeqs: DEFAULTS.maxSeqs, maxWaiting: DEFAULTS.maxWaiting, drainTimeoutMs: 25_000, emfIntervalMs: 0,
    quantization: 'none', quantizeLmHead: false,
    maxResponseBufferBytes: 1024 * 1024, bodyTimeoutMs: 30_000, maxBodyBytesInFlight: 64 * 1024 * 1024,
    ...over,
  };
}

export interface TestServer {
  server: GyreServer;
  url: string;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Starts a server in this process and waits until its model has loaded (or failed to). */
export async function startTestServer(over: Partial<ServeConfig> = {}, opts: StartOptions = {},
                                      waitLoaded = true): Promise<TestServer> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const server = await startServer(testConfig(over), { logDestination: sink, ...opts });
  if (waitLoaded) await server.loaded;
  return { server, url: server.url, logs, close: () => server.shutdown() };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const raw = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  return readResponse(await fetch(url, { method: 'POST', body: raw, headers: { 'Content-Type': 'application/json', ...headers } }));
}

export async function get(url: string): Promise<JsonResponse> {
  return readResponse(await fetch(url));
}

/** The body as text, and as JSON when it parses. */
async function readResponse(res: Response): Promise<JsonResponse> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text.split('\n\n').filter((e) => e.trim()).map((e) => {
    expect(e.startsWith('data:')).toBe(true);
    return e.slice('data:'.length).trim();
  });
}

/** Reads a stream response event by event; onEvent may return false to stop reading (abort). */
export async function readSse(res: Response, onEvent: (data: string) => boolean | void): Promise<void> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (event.startsWith('data:') && onEvent(event.slice(5).trim()) === false) {
        await reader.cancel();
        return;
      }
    }
  }
}

/** One unlabelled sample of a Prometheus metric. */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(' ')[1]);
}

export async function waitFor(cond: () => Promise<boolean> | boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
