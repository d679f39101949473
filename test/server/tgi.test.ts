// TGI's routes and bodies over HTTP on the demo model: /generate, /generate_stream, /invocations
// with each of the three bodies, /info, /health, /v1/models; TGI's byte format for streams.
import { type TestServer, get, post, sseData, startTestServer } from './helpers';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t?.close(); });

const inputs = 'The quick brown fox';

test('/generate answers {generated_text}; details only when asked', async () => {
  const r = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 6 } });
  expect(r.status).toBe(200);
  expect(Object.keys(r.json)).toEqual(['generated_text']);
  expect(typeof r.json.generated_text).toBe('string');
});

test('/invocations with the TGI body answers [{generated_text, details}]', async () => {
  const r = await post(`${t.url}/invocations`, {
    inputs, parameters: { max_new_tokens: 5, details: true, decoder_input_details: true, top_n_tokens: 2 },
  });
  expect(r.status).toBe(200);
  expect(Array.isArray(r.json)).toBe(true);
  const d = r.json[0].details;
  expect(Object.keys(d)).toEqual(['finish_reason', 'generated_tokens', 'seed', 'prefill', 'tokens', 'top_tokens']);
  expect(d).toMatchObject({ finish_reason: 'length', generated_tokens: 5, seed: null });
  expect(d.tokens).toHaveLength(5);
  expect(d.tokens.map((x: { text: string }) => x.text).join('')).toBe(r.json[0].generated_text);
  for (const tok of d.tokens) expect(Object.keys(tok)).toEqual(['id', 'text', 'logprob', 'special']);
  expect(d.top_tokens).toHaveLength(5);
  // Greedy (no do_sample, no warpers): each token is the top one.
  d.tokens.forEach((tok: { id: number }, i: number) => expect(d.top_tokens[i][0].id).toBe(tok.id));
  expect(d.prefill[0]).toEqual({ id: 1, text: '<s>', logprob: null });
  expect(d.prefill.length).toBeGreaterThan(3);
  for (const p of d.prefill.slice(1)) expect(p.logprob).toBeLessThan(0);
});

test('/generate_stream speaks TGI\'s SSE bytes; the last event carries generated_text and details', async () => {
  const params = { max_new_tokens: 8, do_sample: true, seed: 4 };
  const whole = await post(`${t.url}/generate`, { inputs, parameters: params });
  const r = await post(`${t.url}/generate_stream`, { inputs, parameters: params });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
  expect(r.headers.get('transfer-encoding')).toBe('chunked');
  expect(r.text.startsWith('data:{"index":1,"token":{"id":')).toBe(true);
  const events = sseData(r.text).map((d) => JSON.parse(d));
  expect(events).toHaveLength(8);
  events.forEach((e, i) => {
    expect(e.index).toBe(i + 1);
    expect(Object.keys(e)).toEqual(['index', 'token', 'generated_text', 'details']);
    if (i < 7) expect(e.generated_text).toBeNull();
  });
  const last = events[7];
  expect(last.generated_text).toBe(whole.json.generated_text);
  expect(events.map((e) => e.token.text).join('')).toBe(last.generated_text);
  expect(last.details).toEqual({ finish_reason: 'length', generated_tokens: 8, seed: 4, input_length: expect.any(Number) });
});

test('/invocations streams in the format of its body', async () => {
  const tgi = await post(`${t.url}/invocations`, { inputs, parameters: { max_new_tokens: 3 }, stream: true });
  expect(tgi.text.startsWith('data:{"index":1')).toBe(true);
  const chat = await post(`${t.url}/invocations`, { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true });
  const data = sseData(chat.text);
  expect(JSON.parse(data[0]).object).toBe('chat.completion.chunk');
  expect(data[data.length - 1]).toBe('[DONE]');
  const completion = await post(`${t.url}/invocations`, { prompt: 'Hi', max_tokens: 3 });
  expect(completion.json.object).toBe('text_completion');
  const chatWhole = await post(`${t.url}/invocations`, { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 });
  expect(chatWhole.json.object).toBe('chat.completion');
});

test('TGI\'s `/` answers like /invocations; /generate ignores "stream" as TGI does', async () => {
  const root = await post(`${t.url}/`, { inputs, parameters: { max_new_tokens: 2 } });
  expect(root.json).toEqual([{ generated_text: expect.any(String) }]);
  const g = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 2 }, stream: true });
  expect(g.json).toEqual({ generated_text: root.json[0].generated_text });
});

test('return_full_text, stop sequences, and TGI finish reasons', async () => {
  const full = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 4, return_full_text: true } });
  expect(full.json.generated_text.startsWith(inputs)).toBe(true);
  const base = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 16, do_sample: true, seed: 8, details: true } });
  const text: string = base.json.generated_text;
  const stop = text.slice(6, 9);
  const cut = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 16, do_sample: true, seed: 8, stop: [stop], details: true } });
  expect(cut.json.generated_text).toBe(text.slice(0, text.indexOf(stop)));
  expect(cut.json.details.finish_reason).toBe('stop_sequence');
  expect(base.json.details.finish_reason).toBe('length');
  // A stop token id is a stop sequence to TGI, and "stop" to OpenAI.
  const stopId: number = base.json.details.tokens[3].id;
  const byId = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 16, do_sample: true, seed: 8, stop_token_ids: [stopId], details: true } });
  expect(byId.json.details).toMatchObject({ finish_reason: 'stop_sequence', generated_tokens: base.json.details.tokens.findIndex((x: { id: number }) => x.id === stopId) + 1 });
  const oa = await post(`${t.url}/v1/completions`, { prompt: inputs, max_tokens: 16, seed: 8, temperature: 1, stop_token_ids: [stopId] });
  expect(oa.json.choices[0].finish_reason).toBe('stop');
});

test('greedy TGI and temperature-0 OpenAI give the same tokens', async () => {
  const tgi = await post(`${t.url}/generate`, { inputs, parameters: { max_new_tokens: 6, details: true } });
  const oa = await post(`${t.url}/v1/completions`, { prompt: inputs, max_tokens: 6, temperature: 0 });
  expect(oa.json.choices[0].text).toBe(tgi.json.generated_text);
});

test('/info, /health, /v1/models, /ping', async () => {
  const info = await get(`${t.url}/info`);
  expect(info.json).toMatchObject({ model_id: 'demo', max_input_tokens: 2047, max_total_tokens: 2048, model_pipeline_tag: 'text-generation' });
  expect((await get(`${t.url}/health`)).status).toBe(200);
  const models = await get(`${t.url}/v1/models`);
  expect(models.json).toMatchObject({ object: 'list', data: [{ id: 'demo', object: 'model', max_model_len: 2048 }] });
  const ping = await get(`${t.url}/ping`);
  expect(ping.status).toBe(200);
});

test('details token texts are each token\'s own text, also with stop strings (their hold-back does not shift them)', async () => {
  const params = { max_new_tokens: 6, details: true, ignore_eos: true };
  const plain = await post(`${t.url}/generate`, { inputs, parameters: params });
  // A stop string that never matches still holds back up to 9 characters while generating.
  const held = await post(`${t.url}/generate`, { inputs, parameters: { ...params, stop: ['@@@@@@@@@@'] } });
  expect(held.json.generated_text).toBe(plain.json.generated_text);
  expect(held.json.details.tokens).toEqual(plain.json.details.tokens);
});
