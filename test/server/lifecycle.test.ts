// Readiness: /ping is 503 while the model loads and after a failed load (with the reason), and
// 200 only once it is loaded and warmed up. Model settings that cannot work fail clearly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine, type EngineOptions } from '../../src/engine/engine';
import { type TestServer, get, post, startTestServer, waitFor } from './helpers';

const servers: TestServer[] = [];
afterAll(async () => { await Promise.all(servers.map((s) => s.close())); });

async function start(...args: Parameters<typeof startTestServer>): Promise<TestServer> {
  const s = await startTestServer(...args);
  servers.push(s);
  return s;
}

test('/ping is 503 while the model loads and warms up, 200 once both are done', async () => {
  let releaseLoad!: () => void;
  const loadGate = new Promise<void>((r) => { releaseLoad = r; });
  let releaseWarmUp!: () => void;
  const warmUpGate = new Promise<void>((r) => { releaseWarmUp = r; });
  let warmUpStarted = false;
  const loadEngine = async (dir: string, opts: EngineOptions) => {
    await loadGate;
    const engine = await Engine.load(dir, opts);
    const generate = engine.generate.bind(engine);
    // Hold the first (warm-up) generation's chunks back until warmUpGate opens.
    engine.generate = (req) => {
      const it = generate(req);
      if (warmUpStarted) return it;
      warmUpStarted = true;
      const next = it.next.bind(it);
      it.next = async () => { await warmUpGate; return next(); };
      return it;
    };
    return engine;
  };
  const t = await start({}, { loadEngine }, false);
  const loading = await get(`${t.url}/ping`);
  expect(loading.status).toBe(503);
  expect(loading.json).toEqual({ status: 'loading', error: 'the model is loading' });
  const early = await post(`${t.url}/invocations`, { inputs: 'Hi', parameters: { max_new_tokens: 1 } });
  expect(early.status).toBe(503);
  expect(early.json).toEqual({ error: 'the model is loading', error_type: 'unhealthy' });
  expect(early.headers.get('retry-after')).toBe('5');
  const earlyChat = await post(`${t.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'a' }] });
  expect(earlyChat.json.error).toMatchObject({ type: 'service_unavailable_error', message: 'the model is loading' });
  releaseLoad();
  await waitFor(() => warmUpStarted, 10_000, 'the warm-up generation');
  expect((await get(`${t.url}/ping`)).status).toBe(503);
  releaseWarmUp();
  await t.server.loaded;
  expect((await get(`${t.url}/ping`)).status).toBe(200);
  expect((await post(`${t.url}/invocations`, { inputs: 'Hi', parameters: { max_new_tokens: 1 } })).status).toBe(200);
});

test('a broken model folder: /ping 503 with the reason, in the body and the log', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-broken-'));
  fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["LlamaForCausalLM"], "hidden_size": ');
  const t = await start({ model: dir });
  const ping = await get(`${t.url}/ping`);
  expect(ping.status).toBe(503);
  expect(ping.json.status).toBe('failed');
  expect(ping.json.error).toMatch(/^the model failed to load: .*config\.json/);
  const inv = await post(`${t.url}/invocations`, { inputs: 'Hi' });
  expect(inv.status).toBe(503);
  expect(inv.json.error).toBe(ping.json.error);
  expect(t.logs.some((l) => l.level === 'error' && l.msg === ping.json.error)).toBe(true);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('model settings that cannot work: missing folders, nothing at all', async () => {
  const missing = await start({ model: '/nonexistent/model', modelFrom: 'HF_MODEL_ID' });
  expect((await get(`${missing.url}/ping`)).json.error).toMatch(/HF_MODEL_ID=\/nonexistent\/model: not a folder/);
  const none = await start({ model: undefined, modelFrom: 'none' });
  expect((await get(`${none.url}/ping`)).json.error).toMatch(/no model: set GYRE_MODEL/);
});

test('max input tokens must leave room in the context', async () => {
  const t = await start({ maxModelLen: 64, maxInputTokens: 64 });
  expect((await get(`${t.url}/ping`)).json.error).toMatch(/max input tokens \(64\) must be at least 1 and less than the context length \(64\)/);
});

test('an ids-only model (no tokenizer): token-id prompts work and reproduce the reference greedy tokens', async () => {
  const { SafetensorsFile } = await import('../../src/model/safetensors');
  const dir = path.join(__dirname, '..', 'fixtures', 'reference', 'llama-mha');
  const ref = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  const ints = (name: string) => Array.from(ref.read(name).data as BigInt64Array, Number);
  const t = await start({ model: dir });
  const ids = ints('prompt_0.input_ids');
  const r = await post(`${t.url}/v1/completions`, { prompt: ids, max_tokens: 24, temperature: 0, ignore_eos: true, logprobs: 0 });
  expect(r.status).toBe(200);
  expect(r.json.choices[0].logprobs.tokens).toEqual(ints('prompt_0.greedy').map((id) => `token_id:${id}`));
  const text = await post(`${t.url}/generate`, { inputs: 'Hello' });
  expect(text.status).toBe(422);
  expect(text.json.error).toMatch(/no tokenizer\.json/);
  const chat = await post(`${t.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'a' }] });
  expect(chat.status).toBe(400);
  expect(chat.json.error.message).toMatch(/no tokenizer\.json/);
});
