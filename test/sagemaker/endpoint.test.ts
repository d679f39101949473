// The local endpoint's wire behaviour, through the real AWS SDK, against a tiny stand-in container
// (framing, headers, errors, readiness). The end-to-end tests on `gyre serve` are in
// endpoint_serve.test.ts.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { InvokeEndpointWithResponseStreamCommand, ModelError, ModelNotReadyException, ModelStreamError, ValidationError } from '@aws-sdk/client-sagemaker-runtime';
import type { RunningEndpoint } from '../../src/sagemaker/endpoint';
import { decodeFrames, exceptionFrame, payloadPartFrame } from '../../src/sagemaker/event_stream';
import { caught, client, endpoint, invoke, invokeStream } from './helpers';

// Streamed in pieces that split lines and a 4-byte UTF-8 character: the endpoint must pass the
// bytes through as they come, as SageMaker does, and clients must reassemble them.
const STREAM = Buffer.from('data: {"token":"héllo"}\n\ndata: {"token":"🙂 wörld"}\n\ndata: [DONE]\n\n');
const CUTS = [3, 17, 40, 42, 43, 60];

interface Stub { url: string; ready: boolean; seen: http.IncomingHttpHeaders[]; closedEarly: number; close(): Promise<void> }

async function stubContainer(): Promise<Stub> {
  const stub = { ready: false, seen: [] as http.IncomingHttpHeaders[], closedEarly: 0 } as Stub;
  const app = express();
  app.get('/ping', (_req, res) => void res.status(stub.ready ? 200 : 503).send(stub.ready ? '' : 'loading'));
  app.post('/invocations', express.json(), async (req, res) => {
    stub.seen.push(req.headers);
    const b = req.body as { inputs?: unknown; stream?: boolean; mode?: string };
    if (typeof b.inputs !== 'string') return void res.status(422).json({ error: 'Input validation error: `inputs` must be a string', error_type: 'validation' });
    if (b.mode === 'crash') return void res.status(500).send('engine exploded');
    if (b.mode === 'attrs') res.set('X-Amzn-SageMaker-Custom-Attributes', 'answered=yes');
    if (!b.stream) return void res.json([{ generated_text: `echo: ${b.inputs}` }]);
    res.on('close', () => { if (!res.writableFinished) stub.closedEarly++; });
    res.status(200).type('text/event-stream');
    let at = 0;
    for (const cut of [...CUTS, STREAM.length]) {
      if (b.mode === 'break' && at >= 40) return void res.socket?.destroy();
      res.write(STREAM.subarray(at, cut));
      at = cut;
      await new Promise((r) => setTimeout(r, b.mode === 'slow' ? 200 : 15));
    }
    res.end();
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return stub;
}

let stub: Stub;
let ep: RunningEndpoint;

beforeAll(async () => {
  stub = await stubContainer();
  stub.ready = true;
  ep = await endpoint(stub.url);
});
afterAll(async () => {
  await ep.close();
  await stub.close();
});

test('event-stream frames carry the headers the SDK dispatches on', () => {
  const [part] = decodeFrames(payloadPartFrame(Buffer.from('abc')));
  expect(part.headers).toEqual({ ':event-type': 'PayloadPart', ':message-type': 'event', ':content-type': 'application/octet-stream' });
  expect(part.body.toString()).toBe('abc');
  const [err] = decodeFrames(exceptionFrame({ type: 'ModelStreamError', message: 'm', errorCode: 'StreamBroken' }));
  expect(err.headers[':exception-type']).toBe('ModelStreamError');
  expect(err.headers[':message-type']).toBe('exception');
  expect(JSON.parse(err.body.toString())).toEqual({ Message: 'm', ErrorCode: 'StreamBroken' });
});

test('InvokeEndpoint forwards the body and the SageMaker headers and returns the body and type', async () => {
  stub.seen.length = 0;
  const out = await invoke(client(ep.port), { inputs: 'hi', mode: 'attrs' }, {
    Accept: 'application/json', CustomAttributes: 'trace=1', InferenceId: 'req-7',
  });
  expect(JSON.parse(out.text)).toEqual([{ generated_text: 'echo: hi' }]);
  expect(out.ContentType).toMatch(/^application\/json/);
  expect(out.InvokedProductionVariant).toBe('AllTraffic');
  expect(out.CustomAttributes).toBe('answered=yes');
  const h = stub.seen[0];
  expect(h['content-type']).toBe('application/json');
  expect(h.accept).toBe('application/json');
  expect(h['x-amzn-sagemaker-custom-attributes']).toBe('trace=1');
  expect(h['x-amzn-sagemaker-inference-id']).toBe('req-7');
  expect(h.authorization).toBeUndefined();  // the SDK's SigV4 signature stays at the endpoint
});

test('InvokeEndpointWithResponseStream passes the bytes through as PayloadParts, boundaries and all', async () => {
  stub.seen.length = 0;
  const out = await invokeStream(client(ep.port), { inputs: 'hi', stream: true }, { Accept: 'text/event-stream' });
  expect(out.contentType).toMatch(/^text\/event-stream/);
  expect(Buffer.concat(out.parts as Uint8Array[]).equals(STREAM as Uint8Array)).toBe(true);
  expect(out.parts.length).toBeGreaterThan(3);
  // Some part ends inside a line or a character, as on AWS: clients must buffer across parts.
  expect(out.parts.some((p) => p[p.length - 1] !== 0x0a)).toBe(true);
  expect(stub.seen[0].accept).toBe('text/event-stream');  // from X-Amzn-SageMaker-Accept
});

test('a non-2xx from the container is a ModelError (424) carrying its status and message', async () => {
  const e = await caught(invoke(client(ep.port), { inputs: 42 }));
  expect(e).toBeInstanceOf(ModelError);
  const m = e as unknown as ModelError;
  expect(m.$metadata.httpStatusCode).toBe(424);
  expect(m.OriginalStatusCode).toBe(422);
  expect(JSON.parse(m.OriginalMessage!).error).toMatch(/inputs/);
  expect(m.LogStreamArn).toBe('arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/gyre-local');
  expect(m.message).toMatch(/^Received client error \(422\) from primary with message/);

  const s = await caught(invoke(client(ep.port), { inputs: 'x', mode: 'crash' })) as unknown as ModelError;
  expect(s).toBeInstanceOf(ModelError);
  expect(s.OriginalStatusCode).toBe(500);
  expect(s.OriginalMessage).toBe('engine exploded');
  expect(s.message).toMatch(/^Received server error \(500\)/);

  const st = await caught(invokeStream(client(ep.port), { inputs: [], stream: true })) as unknown as ModelError;
  expect(st).toBeInstanceOf(ModelError);
  expect(st.OriginalStatusCode).toBe(422);
});

test('a container stream that breaks off ends in ModelStreamError StreamBroken after the parts sent', async () => {
  const out = await client(ep.port).send(new InvokeEndpointWithResponseStreamCommand({
    EndpointName: 'e', ContentType: 'application/json', Body: JSON.stringify({ inputs: 'x', stream: true, mode: 'break' }),
  }));
  const got: Buffer[] = [];
  const e = await caught((async () => {
    for await (const ev of out.Body!) if (ev.PayloadPart?.Bytes) got.push(Buffer.from(ev.PayloadPart.Bytes));
  })());
  expect(e).toBeInstanceOf(ModelStreamError);
  expect((e as unknown as ModelStreamError).ErrorCode).toBe('StreamBroken');
  expect(Buffer.concat(got as Uint8Array[]).toString()).toBe(STREAM.subarray(0, 40).toString());
});

test('a client that goes away mid-stream closes the container request', async () => {
  const before = stub.closedEarly;
  await new Promise<void>((resolve, reject) => {
    const req = http.request(`http://127.0.0.1:${ep.port}/endpoints/e/invocations-response-stream`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
    }, (res) => res.once('data', () => { req.destroy(); resolve(); }));
    req.on('error', (e) => (e.message === 'socket hang up' ? undefined : reject(e)));
    req.end(JSON.stringify({ inputs: 'x', stream: true, mode: 'slow' }));
  });
  for (let i = 0; i < 50 && stub.closedEarly === before; i++) await new Promise((r) => setTimeout(r, 20));
  expect(stub.closedEarly).toBe(before + 1);
});

test('a body over 6 MB is refused with ValidationError before reaching the container', async () => {
  stub.seen.length = 0;
  const e = await caught(invoke(client(ep.port), { inputs: 'x'.repeat(6 * 1024 * 1024) }));
  expect(e).toBeInstanceOf(ValidationError);
  expect(e.message).toMatch(/6 MB/);
  expect(stub.seen).toHaveLength(0);
});

test('invocations wait for /ping 200, and get ModelNotReadyException when it does not come', async () => {
  const late = await stubContainer();
  const ep2 = await endpoint(late.url, 600);
  try {
    const e = await caught(invoke(client(ep2.port), { inputs: 'x' }));
    expect(e).toBeInstanceOf(ModelNotReadyException);
    expect(e.message).toMatch(/GET \/ping answered 503: loading/);
    const pending = invoke(client(ep2.port), { inputs: 'later' });
    setTimeout(() => { late.ready = true; }, 200);
    const out = await pending;
    expect(JSON.parse(out.text)[0].generated_text).toBe('echo: later');
  } finally {
    await ep2.close();
    await late.close();
  }
});

test('nothing listening at the target: ModelNotReadyException names the refused connection', async () => {
  const gone = await stubContainer();
  await gone.close();
  const ep3 = await endpoint(gone.url, 300);
  try {
    const e = await caught(invoke(client(ep3.port), { inputs: 'x' }));
    expect(e).toBeInstanceOf(ModelNotReadyException);
    expect(e.message).toMatch(/ECONNREFUSED/);
  } finally {
    await ep3.close();
  }
});

test('a container that goes away: ModelError for the call that found out, then readiness is polled again', async () => {
  const dying = await stubContainer();
  dying.ready = true;
  const ep4 = await endpoint(dying.url, 300);
  try {
    await invoke(client(ep4.port), { inputs: 'x' });
    await dying.close();
    const e = await caught(invoke(client(ep4.port), { inputs: 'x' }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message).toMatch(/ECONNREFUSED/);
    expect(ep4.target.status.ready).toBe(false);
    expect(await caught(invoke(client(ep4.port), { inputs: 'x' }))).toBeInstanceOf(ModelNotReadyException);
  } finally {
    await ep4.close();
  }
});
