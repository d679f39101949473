// Every bad request gets a 4xx in its route's shape that says what is wrong, and the server keeps
// serving: size limit, bad bytes, bad JSON, bad fields, context overflow, template refusals,
// a full queue (429 + Retry-After), unknown routes. Unknown fields and SageMaker headers pass.
import { type TestServer, post, startTestServer } from './helpers';

let t: TestServer;
// A small context so the limits are easy to reach.
beforeAll(async () => { t = await startTestServer({ maxModelLen: 64, maxInputTokens: 32 }); });
afterAll(async () => { await t?.close(); });

const tgiShape = (json: unknown) => expect(Object.keys(json as object)).toEqual(['error', 'error_type']);
const openaiShape = (json: any) => expect(Object.keys(json.error)).toEqual(['message', 'type', 'param', 'code']);

test('prompt + max_new_tokens over the context: 422 / 400 with the numbers', async () => {
  const tgi = await post(`${t.url}/generate`, { inputs: 'Hello there', parameters: { max_new_tokens: 62 } });
  expect(tgi.status).toBe(422);
  tgiShape(tgi.json);
  expect(tgi.json).toEqual({
    error: 'Input validation error: `inputs` tokens + `max_new_tokens` must be <= 64. Given: 3 `inputs` tokens and 62 `max_new_tokens`',
    error_type: 'validation',
  });
  const oa = await post(`${t.url}/v1/completions`, { prompt: 'Hello there', max_tokens: 62 });
  expect(oa.status).toBe(400);
  openaiShape(oa.json);
  expect(oa.json.error).toMatchObject({ type: 'invalid_request_error', param: 'max_tokens' });
  expect(oa.json.error.message).toMatch(/maximum context length is 64 tokens.*65 tokens \(3 in the prompt, 62 in the completion\)/);
});

test('prompts over the input limit, whether tokenized or obviously too long', async () => {
  const words = await post(`${t.url}/generate`, { inputs: 'word '.repeat(40), parameters: { max_new_tokens: 1 } });
  expect(words.status).toBe(422);
  expect(words.json.error).toMatch(/`inputs` must have at most 32 tokens. Given: 4\d/);
  const t0 = Date.now();
  const huge = await post(`${t.url}/generate`, { inputs: 'x'.repeat(1_000_000) });
  expect(huge.status).toBe(422);
  expect(huge.json.error).toMatch(/1000000 characters cannot fit in the 32-token input limit/);
  expect(Date.now() - t0).toBeLessThan(2000);   // refused without tokenizing
});

test('413 over 6 MB, in both shapes, and the server keeps serving', async () => {
  const big = JSON.stringify({ inputs: 'a'.repeat(6 * 1024 * 1024) });
  const tgi = await post(`${t.url}/invocations`, big);
  expect(tgi.status).toBe(413);
  expect(tgi.json.error).toMatch(/larger than the limit of 6291456 bytes/);
  const oa = await post(`${t.url}/v1/chat/completions`, big);
  expect(oa.status).toBe(413);
  openaiShape(oa.json);
  expect((await post(`${t.url}/generate`, { inputs: 'ok', parameters: { max_new_tokens: 1 } })).status).toBe(200);
});

test('bytes that are not UTF-8, JSON that is not JSON, nesting that is too deep', async () => {
  const bad = await post(`${t.url}/invocations`, Buffer.from([0x7b, 0x22, 0x69, 0xff, 0xfe, 0x22, 0x7d]));
  expect(bad.status).toBe(400);
  expect(bad.json.error).toBe('the body is not valid UTF-8');
  const notJson = await post(`${t.url}/v1/completions`, '{"prompt": "a",');
  expect(notJson.status).toBe(400);
  expect(notJson.json.error.message).toMatch(/not valid JSON/);
  const deep = await post(`${t.url}/invocations`, '['.repeat(100_000) + ']'.repeat(100_000));
  expect(deep.status).toBe(400);
  expect(deep.json.error).toMatch(/nested deeper than 64 levels/);
  const empty = await post(`${t.url}/invocations`, '');
  expect(empty.status).toBe(400);
});

test('fields of the wrong type or range are named', async () => {
  const cases: [string, unknown, RegExp][] = [
    ['/generate', { inputs: 'a', parameters: { temperature: -1 } }, /parameters\.temperature: Too small.*got -1/],
    ['/generate', { inputs: 'a', parameters: { top_p: 'high' } }, /parameters\.top_p: .*expected number, received string/],
    ['/generate', { inputs: 5 }, /inputs: .*expected string/],
    ['/generate', { inputs: 'a', parameters: { max_new_tokens: 1e300 } }, /parameters\.max_new_tokens/],
    ['/generate', { inputs: 'a', parameters: { best_of: 2 } }, /best_of > 1 is not supported/],
    ['/generate_stream', { inputs: 'a', parameters: { decoder_input_details: true } }, /decoder_input_details/],
    ['/v1/chat/completions', { messages: [] }, /messages: Too small/],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'a' }], n: 0 }, /^n: Too small/],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'a' }], top_logprobs: 2 }, /top_logprobs needs logprobs: true/],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, /messages\[0\]\.content/],
    ['/v1/completions', { prompt: [] }, /prompt: must be a string/],
    ['/v1/completions', { prompt: [1, 2, 99999] }, /token id 99999 at position 2 is outside the vocabulary/],
    ['/v1/completions', { prompt: 'a', stop: 7 }, /stop: must be a string or an array/],
    ['/v1/completions', { prompt: 'a', seed: -1 }, /seed: Too small/],
    ['/invocations', [1, 2], /"inputs" \(TGI\), "messages" \(OpenAI chat\) or "prompt"/],
  ];
  for (const [route, body, message] of cases) {
    const r = await post(`${t.url}${route}`, body);
    const text = route.startsWith('/v1/') ? r.json.error.message : r.json.error;
    expect({ route, body, status: r.status, text }).toEqual({ route, body, status: route.startsWith('/v1/') ? 400 : 422, text: expect.stringMatching(message) });
  }
});

test('a chat template refusal is a 4xx carrying the template\'s message', async () => {
  const r = await post(`${t.url}/invocations`, {
    messages: [{ role: 'assistant', content: 'a' }, { role: 'user', content: 'b' }], max_tokens: 2,
  });
  expect(r.status).toBe(400);
  expect(r.json.error.message).toMatch(/Conversation roles must alternate user\/assistant/);
  expect(r.json.error.param).toBe('messages');
});

test('unknown fields are ignored and logged; SageMaker headers are accepted and logged', async () => {
  const r = await post(`${t.url}/invocations`, { inputs: 'a', parameters: { max_new_tokens: 1, flavour: 'x' }, extra: 1 }, {
    'X-Amzn-SageMaker-Custom-Attributes': 'trace=abc',
    'X-Amzn-SageMaker-Inference-Id': 'inf-1',
  });
  expect(r.status).toBe(200);
  const line = t.logs.find((l) => l.msg === 'request' && (l.sagemaker as Record<string, string> | undefined)?.['inference-id'] === 'inf-1');
  expect(line).toMatchObject({
    status: 200, ignored_fields: ['extra', 'parameters.flavour'], sagemaker: { 'custom-attributes': 'trace=abc', 'inference-id': 'inf-1' },
  });
});

test('unknown routes: 404 in the route\'s shape', async () => {
  const r = await post(`${t.url}/v1/embeddings`, { input: 'a' });
  expect(r.status).toBe(404);
  openaiShape(r.json);
  const g = await fetch(`${t.url}/invocations`);
  expect(g.status).toBe(404);
});

test('a full queue answers 429 with Retry-After', async () => {
  const q = await startTestServer({ maxSeqs: 1, maxWaiting: 0, maxModelLen: 2048 });
  try {
    const ac = new AbortController();
    const first = await fetch(`${q.url}/generate_stream`, {
      method: 'POST', signal: ac.signal,
      body: JSON.stringify({ inputs: 'a', parameters: { max_new_tokens: 2000, ignore_eos: true } }),
    });
    const tgi = await post(`${q.url}/generate`, { inputs: 'b', parameters: { max_new_tokens: 1 } });
    expect(tgi.status).toBe(429);
    expect(tgi.headers.get('retry-after')).toBe('1');
    expect(tgi.json.error_type).toBe('overloaded');
    expect(tgi.json.error).toMatch(/over the limit of 0/);
    const oa = await post(`${q.url}/v1/completions`, { prompt: 'b', max_tokens: 1 });
    expect(oa.status).toBe(429);
    expect(oa.json.error.type).toBe('rate_limit_error');
    ac.abort();
    await first.body?.cancel().catch(() => undefined);
  } finally {
    await q.close();
  }
});
