// gyre invoke: the stream parser against arbitrary PayloadPart boundaries, output as it arrives,
// and end to end: the CLI -> real SDK -> `gyre endpoint` -> `gyre serve` on the demo model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import type { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { StreamText, clientConfig, describeError, invoke, requestBody, responseText } from '../../src/sagemaker/invoke';
import { CLI, freePort, serveDemo, start, stop, type Proc } from '../container/helpers';

const TGI_STREAM = [
  { index: 1, token: { id: 1, text: 'Héllo', special: false }, generated_text: null },
  { index: 2, token: { id: 2, text: ' 世界 🦊', special: false }, generated_text: null },
  { index: 3, token: { id: 3, text: '\n', special: false }, generated_text: null },
  { index: 4, token: { id: 2, text: '</s>', special: true }, generated_text: 'Héllo 世界 🦊\n' },
].map((e) => `data:${JSON.stringify(e)}\n\n`).join('');
const OPENAI_STREAM = [
  { choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] },
  { choices: [{ index: 0, delta: { content: 'Blé' } }] },
  { choices: [{ index: 0, delta: { content: 'u 🦊' } }] },
  { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
].map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`).join('') + 'data: [DONE]\n\n';

/** Feeds `bytes` cut at the given offsets; returns the text. */
function parse(bytes: Buffer, cuts: number[]): string {
  const p = new StreamText();
  let out = '';
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    out += p.push(bytes.subarray(from, at));
    from = at;
  }
  return out + p.end();
}

describe('StreamText', () => {
  test.each([['TGI', TGI_STREAM, 'Héllo 世界 🦊\n'], ['OpenAI', OPENAI_STREAM, 'Bléu 🦊']])('%s: the same text at every cut, even mid-character', (_n, stream, want) => {
    const bytes = Buffer.from(stream, 'utf8');
    expect(parse(bytes, [])).toBe(want);
    for (let at = 1; at < bytes.length; at++) expect(parse(bytes, [at])).toBe(want);
    expect(parse(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))).toBe(want);  // byte by byte
  });

  test('a line is given out as soon as it is complete, not at the end', () => {
    const p = new StreamText();
    expect(p.push(Buffer.from('data:{"token":{"text":"a","special":false}}'))).toBe('');
    expect(p.push(Buffer.from('\n\ndata:{"token":{"text":"b"'))).toBe('a');
    expect(p.push(Buffer.from(',"special":false}}'))).toBe('');
    expect(p.end()).toBe('b');
  });

  test('error events throw with the server\'s message (TGI and OpenAI shapes)', () => {
    expect(() => new StreamText().push(Buffer.from('data:{"error":"out of memory","error_type":"generation"}\n'))).toThrow(/mid-stream: out of memory/);
    expect(() => new StreamText().push(Buffer.from('data: {"error":{"message":"engine died","type":"server_error"}}\n'))).toThrow(/mid-stream: engine died/);
  });
});

test('request bodies: TGI, or OpenAI chat with --chat; greedy TGI is do_sample false', () => {
  expect(requestBody({ endpoint: 'e', text: 'Hi', maxTokens: 8, seed: 3, temperature: 0.5 }))
    .toEqual({ inputs: 'Hi', parameters: { max_new_tokens: 8, seed: 3, temperature: 0.5, do_sample: true }, stream: false });
  expect(requestBody({ endpoint: 'e', text: 'Hi', temperature: 0 }).parameters).toEqual(expect.objectContaining({ do_sample: false, temperature: undefined }));
  expect(requestBody({ endpoint: 'e', text: 'Hi', chat: true, stream: true, maxTokens: 4 }))
    .toEqual(expect.objectContaining({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: true }));
});

test('whole responses: TGI, chat, completion, anything else verbatim', () => {
  expect(responseText('[{"generated_text":"x y"}]')).toBe('x y');
  expect(responseText('{"choices":[{"message":{"role":"assistant","content":"blue"}}]}')).toBe('blue');
  expect(responseText('{"choices":[{"text":"t"}]}')).toBe('t');
  expect(responseText('plain')).toBe('plain');
});

test('client: placeholder credentials only for a local endpoint without configured ones', () => {
  expect(clientConfig({ endpointUrl: 'http://127.0.0.1:8081' }, {})).toEqual({
    endpoint: 'http://127.0.0.1:8081', region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  expect(clientConfig({ endpointUrl: 'http://127.0.0.1:8081' }, { AWS_PROFILE: 'dev' }).credentials).toBeUndefined();
  expect(clientConfig({ endpointUrl: 'https://runtime.sagemaker.eu-west-1.amazonaws.com' }, {}).credentials).toBeUndefined();
  expect(clientConfig({ region: 'eu-west-1' }, { AWS_REGION: 'us-east-1' })).toEqual({ region: 'eu-west-1' });
  expect(clientConfig({}, { AWS_DEFAULT_REGION: 'ap-south-1' })).toEqual({ region: 'ap-south-1' });
});

test('errors name the endpoint and what to do', () => {
  const modelError = Object.assign(new Error('Received client error (422)'), { name: 'ModelError', OriginalStatusCode: 422, OriginalMessage: '{"error":"bad"}' });
  expect(describeError(modelError, 'ep').message).toBe('endpoint ep: the model container answered 422: {"error":"bad"}');
  expect(describeError(new Error('Region is missing'), 'ep').message).toMatch(/pass --region or set AWS_REGION/);
  const notFound = Object.assign(new Error('Endpoint x not found.'), { name: 'ValidationError', $metadata: { httpStatusCode: 400 } });
  expect(describeError(notFound, 'x').message).toBe('endpoint x: ValidationError (HTTP 400): Endpoint x not found.');
});

test('--stream writes each piece when its PayloadPart arrives, before the next one', async () => {
  const written: string[] = [];
  const seenBeforeSecondPart: string[][] = [];
  const client = {
    send: async () => ({
      Body: (async function* () {
        yield { PayloadPart: { Bytes: Buffer.from('data:{"token":{"text":"one","special":false}}\n\nda') } };
        seenBeforeSecondPart.push([...written]);
        yield { PayloadPart: { Bytes: Buffer.from('ta:{"token":{"text":" two","special":false}}\n\n') } };
      })(),
    }),
  } as unknown as SageMakerRuntimeClient;
  await invoke({ endpoint: 'e', text: 'x', stream: true }, (t) => written.push(t), client);
  expect(seenBeforeSecondPart).toEqual([['one']]);
  expect(written).toEqual(['one', ' two']);
});

describe('end to end against gyre endpoint + gyre serve (demo model)', () => {
  let tmp: string;
  let server: Proc;
  let endpointProc: Proc;
  let url: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-invoke-'));
    const serve = await serveDemo(tmp);
    server = serve.proc;
    const port = await freePort();
    endpointProc = start(process.execPath, [CLI, 'endpoint', '--target', serve.url, '--port', String(port)], {});
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && !/container ready/.test(endpointProc.output()); i++) await new Promise((r) => setTimeout(r, 100));
  }, 120_000);

  afterAll(async () => {
    if (endpointProc) await stop(endpointProc);
    if (server) await stop(server);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  // No AWS settings leak in from the machine: the local endpoint needs none.
  const cleanEnv = () => {
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    for (const k of ['AWS_PROFILE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION']) delete env[k];
    return env;
  };
  const gyreInvoke = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'invoke', '--endpoint', 'gyre-local', '--endpoint-url', url, ...args], { env: cleanEnv(), timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });

  test('TGI: --stream prints the same text as the whole response, for the same seed', async () => {
    const args = ['--max-tokens', '16', '--temperature', '0.9', '--seed', '42', 'The quick brown fox'];
    const whole = await gyreInvoke(...args);
    expect(whole.stderr).toBe('');
    expect(whole.code).toBe(0);
    expect(whole.stdout.trim().length).toBeGreaterThan(0);
    const streamed = await gyreInvoke('--stream', ...args);
    expect(streamed.code).toBe(0);
    expect(streamed.stdout).toBe(whole.stdout);
  });

  test('--chat: streamed and whole answers agree', async () => {
    const args = ['--chat', '--max-tokens', '12', '--temperature', '0', 'Name a colour.'];
    const whole = await gyreInvoke(...args);
    const streamed = await gyreInvoke('--stream', ...args);
    expect(whole.code).toBe(0);
    expect(streamed.code).toBe(0);
    expect(whole.stdout.trim().length).toBeGreaterThan(0);
    expect(streamed.stdout).toBe(whole.stdout);
  });

  test('--raw --stream prints the server-sent events themselves', async () => {
    const r = await gyreInvoke('--raw', '--stream', '--max-tokens', '3', 'Hi');
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^data:\{"index":\d+,"token"/gm)).toHaveLength(3);
  });

  test('a request the container refuses: exit 1 with its status and message', async () => {
    const r = await gyreInvoke('--temperature', '-1', 'Hi');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/gyre: endpoint gyre-local: the model container answered 422: .*temperature/);
  });
});
