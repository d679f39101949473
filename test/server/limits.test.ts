// Request limits over HTTP on the demo model: the default token limit on every route,
// the deadline of non-streaming requests, and bodies that are not JSON by their content type.
import { resolveConfig } from '../../src/server/config';
import { type TestServer, post, startTestServer } from './helpers';

describe('the default token limit', () => {
  let t: TestServer;
  beforeAll(async () => { t = await startTestServer(); });
  afterAll(async () => { await t?.close(); });

  test('a request without a limit gets 256 new tokens on every route, not the rest of the context', async () => {
    const tgi = await post(`${t.url}/generate`, { inputs: 'hi', parameters: { ignore_eos: true, details: true } });
    expect(tgi.json.details).toMatchObject({ finish_reason: 'length', generated_tokens: 256 });
    const inv = await post(`${t.url}/invocations`, { inputs: 'hi', parameters: { ignore_eos: true, details: true } });
    expect(inv.json[0].details.generated_tokens).toBe(256);
    const chat = await post(`${t.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], ignore_eos: true });
    expect(chat.json.usage.completion_tokens).toBe(256);
    const completion = await post(`${t.url}/v1/completions`, { prompt: 'hi', ignore_eos: true });
    expect(completion.json.usage.completion_tokens).toBe(256);
  });
});

describe('GYRE_REQUEST_DEADLINE_S', () => {
  test('defaults: 55 s under SageMaker, none elsewhere; a malformed value is named', () => {
    expect(resolveConfig({}, { GYRE_SAGEMAKER: '1' }).requestDeadlineMs).toBe(55_000);
    expect(resolveConfig({}, {}).requestDeadlineMs).toBe(0);
    expect(resolveConfig({}, { GYRE_REQUEST_DEADLINE_S: '2.5' }).requestDeadlineMs).toBe(2500);
    expect(resolveConfig({ requestDeadline: 0 }, { GYRE_SAGEMAKER: '1' }).requestDeadlineMs).toBe(0);
    expect(() => resolveConfig({}, { GYRE_REQUEST_DEADLINE_S: 'soon' })).toThrow(/GYRE_REQUEST_DEADLINE_S=soon/);
  });

  test('at the deadline a non-streaming request returns what it has, with finish reason length and a warning', async () => {
    // 1 ms: the deadline passes long before 1,500 tokens are generated.
    const t = await startTestServer({ requestDeadlineMs: 1 });
    try {
      const tgi = await post(`${t.url}/generate`, { inputs: 'hi', parameters: { max_new_tokens: 1500, ignore_eos: true, details: true } });
      expect(tgi.status).toBe(200);
      expect(tgi.json.details.finish_reason).toBe('length');
      expect(tgi.json.details.generated_tokens).toBeLessThan(1500);
      const chat = await post(`${t.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1500, ignore_eos: true });
      expect(chat.status).toBe(200);
      expect(chat.json.choices[0].finish_reason).toBe('length');
      expect(chat.json.usage.completion_tokens).toBeLessThan(1500);
      const warnings = t.logs.filter((l) => l.level === 'warn' && /deadline/.test(String(l.msg)));
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toMatchObject({ deadline_ms: 1 });
      // Streams are not cut: the client sees tokens as they come.
      const stream = await post(`${t.url}/generate_stream`, { inputs: 'hi', parameters: { max_new_tokens: 40, ignore_eos: true } });
      expect(stream.text.match(/"generated_tokens":(\d+)/)?.[1]).toBe('40');
    } finally {
      await t.close();
    }
  });
});

describe('content types', () => {
  let t: TestServer;
  beforeAll(async () => { t = await startTestServer(); });
  afterAll(async () => { await t?.close(); });

  test('a form-encoded body is 415 in the route\'s error shape, not parsed as JSON', async () => {
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const tgi = await post(`${t.url}/generate`, { inputs: 'hi', parameters: { max_new_tokens: 2 } }, form);
    expect(tgi.status).toBe(415);
    expect(tgi.json).toEqual({ error: expect.stringMatching(/application\/x-www-form-urlencoded.*application\/json/), error_type: 'validation' });
    const openai = await post(`${t.url}/v1/completions`, { prompt: 'hi', max_tokens: 2 }, { 'Content-Type': 'multipart/form-data; boundary=x' });
    expect(openai.status).toBe(415);
    expect(openai.json.error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_media_type' });
  });

  test('JSON, text/plain, octet-stream and no content type are still read as JSON (some SDKs send JSON without saying so)', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream']) {
      const r = await post(`${t.url}/generate`, { inputs: 'hi', parameters: { max_new_tokens: 2 } }, { 'Content-Type': type });
      expect({ type, status: r.status }).toEqual({ type, status: 200 });
    }
    const none = await fetch(`${t.url}/generate`, { method: 'POST', body: Buffer.from(JSON.stringify({ inputs: 'hi', parameters: { max_new_tokens: 2 } })) });
    expect(none.status).toBe(200);
  });
});
