// Clients that do not read their streams, and clients that never finish sending their bodies,
// against `gyre serve` in a child process: memory stays bounded, the offenders get aborted or an
// error reply, and /ping answers within 2 s throughout.
import * as net from 'node:net';
import { type ChildServer, metricValue, startChild, watchPing } from './child_server';
import { waitFor } from './helpers';

jest.setTimeout(180_000);

/** A raw HTTP request on its own socket; the socket is paused, so the reply is never read. */
function rawRequest(url: string, head: string, body: string | Buffer, read = false): Promise<net.Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => {
      s.write(head);
      if (body.length) s.write(body);
      if (!read) s.pause();
      resolve(s);
    });
    s.on('error', reject);
  });
}

/** Whatever the server sends on a socket until it closes it (or timeoutMs passes). */
function replyOf(s: net.Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const t = setTimeout(() => { s.destroy(); resolve(out); }, timeoutMs);
    s.on('data', (d) => { out += d; });
    s.on('close', () => { clearTimeout(t); resolve(out); });
    s.resume();
  });
}

function post(path: string, body: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('clients that do not read their streams', () => {
  let srv: ChildServer;
  afterAll(async () => { await srv?.stop(); });

  test('64 non-reading streams: each is aborted past the buffer cap, counted and logged; RSS stays bounded', async () => {
    srv = await startChild([], { GYRE_MAX_RESPONSE_BUFFER: String(256 * 1024) });
    const ping = watchPing(srv.url);
    const before = srv.rssMib();
    // ~7.6 MB of events per client if it ran to the end (n=4 x 1000 tokens x ~1.9 kB).
    const body = JSON.stringify({
      messages: [{ role: 'user', content: 'Tell me everything.' }], stream: true, n: 4, logprobs: true, top_logprobs: 20,
      max_tokens: 1000, ignore_eos: true,
    });
    const sockets = await Promise.all(Array.from({ length: 64 }, () => rawRequest(srv.url, post('/v1/chat/completions', body), '')));
    let peak = before;
    try {
      await waitFor(async () => {
        peak = Math.max(peak, srv.rssMib());
        return (await metricValue(srv.url, 'gyre_slow_client_aborts_total')) === 64;
      }, 170_000, 'all 64 streams to be aborted');
      expect(srv.logs.filter((l) => l.msg === 'aborted a client that fell behind its stream').length).toBe(64);
      await waitFor(async () => (await metricValue(srv.url, 'gyre_num_requests_running')) === 0, 10_000, 'the engine to drop them');
    } finally {
      sockets.forEach((s) => s.destroy());
    }
    const stats = await ping.stop();
    process.stdout.write(`64 non-reading clients: RSS ${before.toFixed(0)} MiB, peak ${peak.toFixed(0)}, after ${srv.rssMib().toFixed(0)}; /ping ${JSON.stringify(stats)}\n`);
    expect(peak - before).toBeLessThan(300);
    expect(stats.failed).toBe(0);
    expect(stats.max).toBeLessThan(2000);
  });
});

describe('slow and oversized request bodies', () => {
  let srv: ChildServer;
  afterAll(async () => { await srv?.stop(); });

  test('a body that stops arriving gets a 408 JSON reply after the body timeout', async () => {
    srv = await startChild([], { GYRE_BODY_TIMEOUT: '1', GYRE_MAX_BODY_BYTES_IN_FLIGHT: String(2 * 1024 * 1024) });
    const ping = watchPing(srv.url);
    const s = await rawRequest(srv.url,
      'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n', '{"inputs": "a', true);
    const reply = await replyOf(s, 10_000);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toEqual({
      error: 'the request body did not arrive within 1 s (GYRE_BODY_TIMEOUT)', error_type: 'timeout',
    });
    // A chunked body that never ends: the same, in the OpenAI shape on an OpenAI route.
    const c = await rawRequest(srv.url,
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\n{"pro\r\n', true);
    const chunked = await replyOf(c, 10_000);
    expect(chunked).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(chunked.slice(chunked.indexOf('\r\n\r\n') + 4)).error).toMatchObject({ type: 'timeout_error' });
    const stats = await ping.stop();
    expect(stats.failed).toBe(0);
  });

  test('bodies in flight past the byte cap: 503 at once, and the server recovers when they go', async () => {
    // 1.5 MB declared, 1.4 MB sent: the first holds most of the 2 MiB cap.
    const partial = Buffer.alloc(1_400_000, 'a');
    const head = 'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1500000\r\n\r\n';
    const first = await rawRequest(srv.url, head, partial, true);
    await new Promise((r) => setTimeout(r, 200));
    const second = await rawRequest(srv.url, head, partial, true);
    const reply = await replyOf(second, 10_000);
    expect(reply).toMatch(/^HTTP\/1\.1 503 /);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).error)
      .toMatch(/request bodies in flight would exceed 2097152 bytes \(GYRE_MAX_BODY_BYTES_IN_FLIGHT\)/);
    first.destroy();
    // The first body's bytes are released with its socket; a normal request then runs.
    await waitFor(async () => (await fetch(`${srv.url}/invocations`, {
      method: 'POST', body: JSON.stringify({ inputs: 'Hi', parameters: { max_new_tokens: 2 } }),
    })).status === 200, 10_000, 'a request to succeed');
  });

  test('/v1/completions refuses tools and response_format as chat does', async () => {
    for (const [field, value, message] of [
      ['tools', [{ type: 'function', function: { name: 'f' } }], 'tools are not supported'],
      ['tool_choice', 'auto', 'tool_choice is not supported'],
      ['response_format', { type: 'xml' }, 'type must be "text", "json_object" or "json_schema"'],
    ] as const) {
      for (const [route, base] of [['/v1/chat/completions', { messages: [{ role: 'user', content: 'a' }] }], ['/v1/completions', { prompt: 'a' }]] as const) {
        const r = await fetch(`${srv.url}${route}`, { method: 'POST', body: JSON.stringify({ ...base, max_tokens: 1, [field]: value }) });
        expect([route, field, r.status]).toEqual([route, field, 400]);
        expect(((await r.json()) as { error: unknown }).error).toMatchObject({ message: expect.stringContaining(message), param: expect.stringContaining(field) });
      }
    }
  });
});
