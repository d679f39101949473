// The official openai npm client against gyre serve on the demo model: chat, completions,
// streaming chat, stop strings, seeds and logprobs.
import OpenAI from 'openai';
import { type TestServer, startTestServer, waitFor } from './helpers';

let t: TestServer;
let client: OpenAI;
const messages = [{ role: 'user' as const, content: 'Tell me a story about a dragon.' }];

beforeAll(async () => {
  t = await startTestServer();
  client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => { await t?.close(); });

const engine = () => t.server.context.host.model!.engine;

test('chat completion', async () => {
  const r = await client.chat.completions.create({ model: 'any-name', messages, max_tokens: 12, seed: 5 });
  expect(r.object).toBe('chat.completion');
  expect(r.model).toBe('any-name');
  expect(r.choices).toHaveLength(1);
  expect(r.choices[0].message.role).toBe('assistant');
  expect(typeof r.choices[0].message.content).toBe('string');
  expect(r.choices[0].finish_reason).toBe('length');
  expect(r.usage!.completion_tokens).toBe(12);
  expect(r.usage!.prompt_tokens).toBeGreaterThan(8);
  expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + 12);
});

test('text completion, several prompts and n', async () => {
  const r = await client.completions.create({ model: 'demo', prompt: ['Once upon a time', 'The cat'], max_tokens: 5, n: 2, seed: 3 });
  expect(r.object).toBe('text_completion');
  expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
  expect(r.choices.every((c) => c.finish_reason === 'length')).toBe(true);
  expect(r.usage!.completion_tokens).toBe(20);
  // n choices of one prompt use different seeds, so they differ.
  expect(r.choices[0].text).not.toBe(r.choices[1].text);
});

test('the same seed gives the same text; another seed another text', async () => {
  const ask = (seed: number) => client.chat.completions.create({ model: 'm', messages, max_tokens: 16, seed, temperature: 1 });
  const [a, b, c] = await Promise.all([ask(11), ask(11), ask(12)]);
  expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
  expect(a.choices[0].message.content).not.toBe(c.choices[0].message.content);
});

test('streaming chat gives the non-streamed text for the same seed', async () => {
  const whole = await client.chat.completions.create({ model: 'm', messages, max_tokens: 20, seed: 9 });
  const stream = await client.chat.completions.create({
    model: 'm', messages, max_tokens: 20, seed: 9, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let chunks = 0;
  for await (const chunk of stream) {
    expect(chunk.object).toBe('chat.completion.chunk');
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  expect(chunks).toBeGreaterThan(3);
  expect(text).toBe(whole.choices[0].message.content);
  expect(finish).toBe('length');
  expect(usage?.completion_tokens).toBe(20);
});

test('a stop string across a token boundary cuts the text before it and ends the sequence', async () => {
  const base = await client.chat.completions.create({ model: 'm', messages, max_tokens: 24, seed: 21, logprobs: true });
  const tokens = base.choices[0].logprobs!.content!.map((l) => l.token);
  const text = base.choices[0].message.content!;
  // The last character of token i and the first of token i+1: a stop string no single token holds.
  const i = tokens.findIndex((tok, k) => k >= 3 && k < tokens.length - 3 && tok.length > 0 && tokens[k + 1].length > 0
    && !tok.includes('\uFFFD') && !tokens[k + 1].includes('\uFFFD'));
  expect(i).toBeGreaterThan(0);
  const stop = tokens[i].slice(-1) + tokens[i + 1][0];
  const at = text.indexOf(stop);
  expect(at).toBeGreaterThanOrEqual(0);
  const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 24, seed: 21, stop: [stop, 'never-seen'] });
  expect(r.choices[0].message.content).toBe(text.slice(0, at));
  expect(r.choices[0].finish_reason).toBe('stop');
  expect(r.usage!.completion_tokens).toBeLessThan(24);
  await waitFor(() => engine().stats().numRunning === 0, 5000, 'the stopped sequence to leave the engine');
  expect(engine().stats().numBlocksUsed).toBe(0);
});

test('chat logprobs with top_logprobs', async () => {
  const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs!.content!;
  expect(content).toHaveLength(6);
  for (const entry of content) {
    expect(entry.logprob).toBeLessThanOrEqual(0);
    expect(entry.top_logprobs).toHaveLength(3);
    expect(entry.bytes).toEqual([...Buffer.from(entry.token, 'utf8')]);
    // Greedy: the chosen token is the most likely one.
    expect(entry.token).toBe(entry.top_logprobs[0].token);
    expect(entry.logprob).toBeCloseTo(entry.top_logprobs[0].logprob, 5);
    const lps = entry.top_logprobs.map((x) => x.logprob);
    expect([...lps].sort((a, b) => b - a)).toEqual(lps);
  }
});

test('completion logprobs', async () => {
  const r = await client.completions.create({ model: 'm', prompt: 'The dragon', max_tokens: 5, seed: 2, logprobs: 2 });
  const lp = r.choices[0].logprobs!;
  expect(lp.tokens).toHaveLength(5);
  expect(lp.token_logprobs).toHaveLength(5);
  expect(lp.top_logprobs!.every((m) => Object.keys(m!).length >= 1 && Object.keys(m!).length <= 2)).toBe(true);
  expect(lp.text_offset![0]).toBe(0);
});

test('client errors arrive as the client\'s typed errors with the server\'s message', async () => {
  const tooLong = client.chat.completions.create({ model: 'm', messages, max_tokens: 100_000 });
  await expect(tooLong).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  await expect(tooLong).rejects.toThrow(/maximum context length is 2048 tokens.*100000 in the completion/);
  const badRole = client.chat.completions.create({
    model: 'm', max_tokens: 2,
    messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }],
  });
  await expect(badRole).rejects.toThrow(/chat template refused the messages: Conversation roles must alternate/);
  const badTemp = client.chat.completions.create({ model: 'm', messages, temperature: 7 });
  await expect(badTemp).rejects.toThrow(/temperature/);
});
