// Request parsing and parameter mapping without a model: both vocabularies onto the engine's
// sampler, generation_config.json defaults, context bounds, seeds, error shapes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectBody } from '../../src/api/detect';
import { ApiError, toWire } from '../../src/api/errors';
import { type ServedModel, readModelDefaults } from '../../src/api/model';
import { parseChat, parseCompletion, planOpenAi } from '../../src/api/openai_request';
import { parseTgi, planTgi } from '../../src/api/tgi_request';
import { f32 } from '../../src/api/tgi_response';

/** A model stand-in: each character of a prompt is one token (plus BOS 1). */
function fakeModel(over: Partial<ServedModel> = {}): ServedModel {
  const engine = {
    config: { vocabSize: 1000, bosTokenId: 1, eosTokenIds: [2] },
    tokenizer: {},
    encodePrompt: async (r: { prompt?: string; messages?: { content: string }[] }) =>
      [1, ...[...(r.prompt ?? r.messages!.map((m) => m.content).join(''))].map((c) => 3 + (c.charCodeAt(0) % 900))],
  };
  return {
    engine, name: 'fake', defaults: {}, limits: { maxModelLen: 100, maxInputTokens: 50 },
    tokens: { maxTokenChars: 4 }, ...over,
  } as unknown as ServedModel;
}

async function expectApiError(f: () => unknown, message: RegExp, param?: string): Promise<void> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).message).toMatch(message);
    if (param) expect((e as ApiError).param).toBe(param);
    return;
  }
  throw new Error('expected an ApiError');
}

describe('TGI parameters', () => {
  test('no do_sample and no warpers: greedy, no seed; max_new_tokens default is capped by the context', async () => {
    const plan = await planTgi(parseTgi({ inputs: 'abcd' }), fakeModel());
    expect(plan.requests).toEqual([{ promptIds: [1, 100, 101, 102, 103], params: { temperature: 0, maxTokens: 95, logprobs: 0 } }]);
    expect(plan.seeds).toEqual([null]);
  });

  test('a warper turns sampling on, even with do_sample false; the seed is kept', async () => {
    const plan = await planTgi(parseTgi({ inputs: 'a', parameters: { do_sample: false, top_k: 5, seed: 9, max_new_tokens: 3 } }), fakeModel());
    expect(plan.requests[0].params).toMatchObject({ temperature: 1, topK: 5, seed: 9, maxTokens: 3 });
  });

  test('all the mapped fields', async () => {
    const req = parseTgi({
      inputs: 'abc', stream: true,
      parameters: {
        do_sample: true, temperature: 0.5, top_p: 0.8, min_p: 0.05, repetition_penalty: 1.2, frequency_penalty: 0.3,
        presence_penalty: -0.1, stop: ['\n', 'END'], stop_token_ids: [7], ignore_eos: true, top_n_tokens: 3, truncate: 2,
      },
    });
    expect(req.stream).toBe(true);
    const r = (await planTgi(req, fakeModel())).requests[0];
    expect(r).toMatchObject({
      params: {
        temperature: 0.5, topP: 0.8, minP: 0.05, repetitionPenalty: 1.2, frequencyPenalty: 0.3, presencePenalty: -0.1,
        stopTokenIds: [7], ignoreEos: true, logprobs: 3,
      },
      stop: ['\n', 'END'], promptIds: [101, 102],
    });
    expect(r.params!.seed).toEqual(expect.any(Number));   // drawn, and reported back
  });

  test('generation_config.json defaults fill what the request leaves out', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-gc-'));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ do_sample: true, temperature: 0.6, top_p: 0.9, max_new_tokens: 20, bos_token_id: 1 }));
    const defaults = readModelDefaults(dir);
    expect(defaults).toEqual({ doSample: true, temperature: 0.6, topP: 0.9, maxNewTokens: 20 });
    const model = fakeModel({ defaults });
    expect((await planTgi(parseTgi({ inputs: 'a' }), model)).requests[0].params).toMatchObject({ temperature: 0.6, topP: 0.9, maxTokens: 20 });
    expect((await planTgi(parseTgi({ inputs: 'a', parameters: { top_p: 0.5 } }), model)).requests[0].params).toMatchObject({ temperature: 0.6, topP: 0.5 });
    expect((await planOpenAi(parseChat({ messages: [{ role: 'user', content: 'a' }], temperature: 0 }), model)).requests[0].params).toMatchObject({ temperature: 0, maxTokens: 20 });
    fs.rmSync(dir, { recursive: true });
  });

  test('context and input limits name the numbers', async () => {
    await expectApiError(() => planTgi(parseTgi({ inputs: 'abc', parameters: { max_new_tokens: 97 } }), fakeModel()),
      /must be <= 100. Given: 4 `inputs` tokens and 97 `max_new_tokens`/, 'max_new_tokens');
    await expectApiError(() => planTgi(parseTgi({ inputs: 'x'.repeat(60) }), fakeModel()), /at most 50 tokens. Given: 61/);
    await expectApiError(() => planTgi(parseTgi({ inputs: 'x'.repeat(201) }), fakeModel()), /201 characters cannot fit in the 50-token input limit/);
  });

  test('refusals', async () => {
    await expectApiError(() => parseTgi({ inputs: 'a', parameters: { decoder_input_details: true } }, true), /not supported when streaming/);
    await expectApiError(() => parseTgi({ inputs: 'a', parameters: { temperature: 0 } }), /parameters\.temperature: Too small/, 'parameters');
    await expectApiError(() => parseTgi({ inputs: 'a', parameters: { watermark: true } }), /watermark is not supported/);
    await expectApiError(() => parseTgi({ inputs: 'a', parameters: { stop: Array(17).fill('x') } }), /at most 16 strings/);
  });

  test('unknown fields are listed, not refused', async () => {
    expect(parseTgi({ inputs: 'a', x: 1, parameters: { y: 2, max_new_tokens: 1 } }).unknown).toEqual(['x', 'parameters.y']);
  });
});

describe('OpenAI fields', () => {
  test('chat: logprobs, top_logprobs, n with consecutive seeds, top_k -1, stop string', async () => {
    const plan = await planOpenAi(parseChat({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'ab' }] }], logprobs: true, top_logprobs: 2, n: 3, seed: 5,
      top_k: -1, stop: 'zz', max_completion_tokens: 4, unknown_thing: true,
    }), fakeModel());
    expect(plan.requests.map((r) => r.params!.seed)).toEqual([5, 6, 7]);
    expect(plan.requests[0]).toMatchObject({ params: { temperature: 1, logprobs: 2, topK: 0, maxTokens: 4 }, stop: ['zz'], promptIds: [1, 100, 101] });
  });

  test('completions: several prompts (text and ids), n', async () => {
    const req = parseCompletion({ prompt: [[1, 5, 6], [1, 7]], n: 2, max_tokens: 1, temperature: 0 });
    const plan = await planOpenAi(req, fakeModel());
    expect(plan.requests.map((r) => r.promptIds)).toEqual([[1, 5, 6], [1, 5, 6], [1, 7], [1, 7]]);
    expect(plan.seeds).toEqual([null, null, null, null]);
  });

  test('refusals name the field', async () => {
    await expectApiError(() => parseChat({ messages: [{ role: 'user', content: 'a' }], top_logprobs: 1 }), /top_logprobs needs logprobs/, 'top_logprobs');
    await expectApiError(() => parseChat({ messages: [{ role: 'user', content: 'a' }], tools: [{}] }), /tools are not supported/);
    for (const [field, value, message] of [['tools', [{}], /tools are not supported/], ['tool_choice', 'auto', /tool_choice is not supported/],
      ['response_format', { type: 'xml' }, /type must be "text", "json_object" or "json_schema"/]] as const) {
      await expectApiError(() => parseChat({ messages: [{ role: 'user', content: 'a' }], [field]: value }), message);
      await expectApiError(() => parseCompletion({ prompt: 'a', [field]: value }), message);
    }
    await expectApiError(() => parseCompletion({ prompt: 'a', best_of: 3 }), /best_of \(3\) must equal n \(1\)/, 'best_of');
    await expectApiError(() => parseCompletion({ prompt: 'a', max_tokens: 0 }), /max_tokens: Too small/, 'max_tokens');
    await expectApiError(() => planOpenAi(parseCompletion({ prompt: [1, 1000] }), fakeModel()), /token id 1000 at position 1 is outside the vocabulary \[0, 1000\)/);
    await expectApiError(() => planOpenAi(parseCompletion({ prompt: Array(40).fill('a'), n: 2 }), fakeModel()), /over the limit of 64 choices/);
  });
});

test('/invocations body detection', async () => {
  expect(detectBody({ inputs: 'a' })).toBe('tgi');
  expect(detectBody({ messages: [] })).toBe('chat');
  expect(detectBody({ prompt: 'a' })).toBe('completion');
  expect(() => detectBody('a')).toThrow(/"inputs" \(TGI\), "messages" \(OpenAI chat\) or "prompt"/);
});

test('error shapes: TGI and OpenAI', async () => {
  const e = new ApiError('overloaded', 'busy', { retryAfter: 2 });
  expect(toWire(e, 'tgi')).toEqual({ status: 429, body: { error: 'busy', error_type: 'overloaded' }, headers: { 'Retry-After': '2' } });
  expect(toWire(new ApiError('validation', 'bad', { param: 'n' }), 'openai')).toEqual({
    status: 400, body: { error: { message: 'bad', type: 'invalid_request_error', param: 'n', code: null } }, headers: {},
  });
  expect(toWire(new ApiError('validation', 'bad'), 'tgi').status).toBe(422);
});

test('logprobs print as the float32 TGI would print', async () => {
  expect(f32(-0.9719473245620728)).toBe(-0.9719473);
  expect(f32(-Infinity)).toBeNull();
  expect(f32(0)).toBe(0);
});

describe('the default token limit', () => {
  // A context far longer than the default, so "the rest of the context" and the default differ.
  const big = () => fakeModel({ limits: { maxModelLen: 4096, maxInputTokens: 4000 } });

  test('every API shape gets DEFAULT_MAX_NEW_TOKENS (256) when neither the request nor generation_config.json sets one', async () => {
    const { DEFAULT_MAX_NEW_TOKENS } = (await import('../../src/api/sampling')) as unknown as { DEFAULT_MAX_NEW_TOKENS: number };
    expect(DEFAULT_MAX_NEW_TOKENS).toBe(256);
    expect((await planTgi(parseTgi({ inputs: 'abcd' }), big())).requests[0].params!.maxTokens).toBe(256);
    expect((await planOpenAi(parseChat({ messages: [{ role: 'user', content: 'a' }] }), big())).requests[0].params!.maxTokens).toBe(256);
    expect((await planOpenAi(parseCompletion({ prompt: 'a' }), big())).requests[0].params!.maxTokens).toBe(256);
  });

  test('generation_config.json and the request still win; a short context still caps it', async () => {
    const withConfig = fakeModel({ limits: { maxModelLen: 4096, maxInputTokens: 4000 }, defaults: { maxNewTokens: 1000 } });
    expect((await planTgi(parseTgi({ inputs: 'a' }), withConfig)).requests[0].params!.maxTokens).toBe(1000);
    expect((await planTgi(parseTgi({ inputs: 'a', parameters: { max_new_tokens: 3000 } }), big())).requests[0].params!.maxTokens).toBe(3000);
    expect((await planTgi(parseTgi({ inputs: 'abcd' }), fakeModel())).requests[0].params!.maxTokens).toBe(95);
  });
});
