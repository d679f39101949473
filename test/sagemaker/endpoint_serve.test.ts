// End to end: the real AWS SDK -> `gyre endpoint` (the CLI) -> `gyre serve` on the demo model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelError } from '@aws-sdk/client-sagemaker-runtime';
import { CLI, freePort, serveDemo, start, stop, waitFor200, type Proc } from '../container/helpers';
import { caught, client, invoke, invokeStream, sseData } from './helpers';

let tmp: string;
let server: Proc;
let endpointProc: Proc;
let port: number;
let serveUrl: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-endpoint-'));
  const serve = await serveDemo(tmp);
  server = serve.proc;
  serveUrl = serve.url;
  port = await freePort();
  endpointProc = start(process.execPath, [CLI, 'endpoint', '--target', serve.url, '--port', String(port)], {});
  // The endpoint has no /ping of its own; an unknown path answers 404 once it listens.
  for (let i = 0; i < 100; i++) {
    const s = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 0);
    if (s === 404) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  if (endpointProc) await stop(endpointProc);
  if (server) await stop(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const tgi = (stream: boolean) => ({
  inputs: 'The quick brown fox',
  parameters: { max_new_tokens: 24, do_sample: true, temperature: 0.9, top_p: 0.95, seed: 1234 },
  stream,
});

const chat = (stream: boolean) => ({
  messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a colour.' }],
  max_tokens: 20, temperature: 0.8, seed: 99, stream,
});

test('the endpoint says on start where it listens and that it waits for /ping, then that the container is ready', async () => {
  const log = endpointProc.output();
  expect(log).toMatch(new RegExp(`http://127\\.0\\.0\\.1:${port}`));
  expect(log).toMatch(/GET \/ping/);
  for (let i = 0; i < 50 && !/container ready/.test(endpointProc.output()); i++) await new Promise((r) => setTimeout(r, 100));
  expect(endpointProc.output()).toMatch(/container ready/);
});

test('InvokeEndpoint with the TGI body', async () => {
  const out = await invoke(client(port), tgi(false), { Accept: 'application/json' });
  expect(out.ContentType).toMatch(/^application\/json/);
  const body = JSON.parse(out.text) as { generated_text: string }[];
  expect(body).toHaveLength(1);
  expect(typeof body[0].generated_text).toBe('string');
  expect(body[0].generated_text.length).toBeGreaterThan(0);
});

test('InvokeEndpoint with the chat body', async () => {
  const out = await invoke(client(port), chat(false));
  const body = JSON.parse(out.text) as { object: string; choices: { message: { role: string; content: string } }[] };
  expect(body.object).toBe('chat.completion');
  expect(body.choices[0].message.role).toBe('assistant');
  expect(typeof body.choices[0].message.content).toBe('string');
});

test('InvokeEndpointWithResponseStream (TGI): the streamed text equals the non-streamed text for the same seed', async () => {
  const whole = JSON.parse((await invoke(client(port), tgi(false))).text)[0].generated_text as string;
  const streamed = await invokeStream(client(port), tgi(true), { Accept: 'text/event-stream' });
  expect(streamed.contentType).toMatch(/^text\/event-stream/);
  const events = sseData(streamed.text).map((d) => JSON.parse(d) as { token: { text: string; special: boolean }; generated_text: string | null });
  expect(events.length).toBeGreaterThan(1);
  const tokens = events.filter((e) => !e.token.special).map((e) => e.token.text).join('');
  expect(tokens).toBe(whole);
  expect(events[events.length - 1].generated_text).toBe(whole);
});

test('InvokeEndpointWithResponseStream (chat): the streamed deltas equal the non-streamed message', async () => {
  const whole = JSON.parse((await invoke(client(port), chat(false))).text).choices[0].message.content as string;
  const streamed = await invokeStream(client(port), chat(true));
  const data = sseData(streamed.text);
  expect(data[data.length - 1]).toBe('[DONE]');
  const text = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[] })
    .map((c) => c.choices[0]?.delta?.content ?? '').join('');
  expect(text).toBe(whole);
});

test('a bad body surfaces as ModelError carrying the container\'s own 4xx status and body', async () => {
  const bad = { inputs: 42, parameters: { max_new_tokens: 'many' } };
  const direct = await fetch(`${serveUrl}/invocations`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bad),
  });
  const directText = await direct.text();
  expect(direct.status).toBeGreaterThanOrEqual(400);
  expect(direct.status).toBeLessThan(500);

  const e = await caught(invoke(client(port), bad)) as unknown as ModelError;
  expect(e).toBeInstanceOf(ModelError);
  expect(e.$metadata.httpStatusCode).toBe(424);
  expect(e.OriginalStatusCode).toBe(direct.status);
  expect(e.OriginalMessage).toBe(directText);
  expect(JSON.parse(e.OriginalMessage!).error).toEqual(expect.any(String));  // TGI's error shape
  expect(e.message).toContain(`Received client error (${direct.status}) from primary with message`);

  const s = await caught(invokeStream(client(port), { messages: [], stream: true })) as unknown as ModelError;
  expect(s).toBeInstanceOf(ModelError);
  expect(s.OriginalStatusCode).toBeGreaterThanOrEqual(400);
  expect(s.OriginalStatusCode).toBeLessThan(500);
  expect(JSON.parse(s.OriginalMessage!).error.param).toBe('messages');  // OpenAI's error shape
  // The server keeps serving.
  expect(JSON.parse((await invoke(client(port), tgi(false))).text)[0].generated_text).toEqual(expect.any(String));
});

test('gyre endpoint before its container is up: waits, then answers once /ping is 200', async () => {
  const p2 = await freePort();
  const late = await freePort();
  const ep = start(process.execPath, [CLI, 'endpoint', '--target', `http://127.0.0.1:${late}`, '--port', String(p2)], {});
  let serve2: Proc | undefined;
  try {
    for (let i = 0; i < 100 && !/GET \/ping/.test(ep.output()); i++) await new Promise((r) => setTimeout(r, 50));
    const pending = invoke(client(p2), tgi(false));
    serve2 = start(process.execPath, [CLI, 'serve', '--model', path.join(tmp, 'model'), '--port', String(late)], { GYRE_BACKEND: 'cpu' });
    const out = await pending;
    expect(typeof JSON.parse(out.text)[0].generated_text).toBe('string');
    await waitFor200(`http://127.0.0.1:${late}/ping`, 1000);
  } finally {
    await stop(ep);
    if (serve2) await stop(serve2);
  }
}, 90_000);
