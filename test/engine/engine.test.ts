// The Engine facade over the real addon and the reference fixture models (needs the built addon).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine, type GenerationChunk } from '../../src/engine/engine';
import { makeModel } from '../../src/model/make_model';
import { SafetensorsFile } from '../../src/model/safetensors';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');
const MODELS = fs.readdirSync(REF).filter((d) => fs.existsSync(path.join(REF, d, 'reference.safetensors'))).sort();
const ADDON = path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'gyre.node');

interface RefPrompt { k: number; ids: number[]; logits: Float32Array; greedy: number[] }

function refPrompts(model: string): RefPrompt[] {
  const f = SafetensorsFile.open(path.join(REF, model, 'reference.safetensors'));
  const out: RefPrompt[] = [];
  for (let k = 0; f.tensors.has(`prompt_${k}.input_ids`); k++) {
    const ints = (name: string) => Array.from(f.read(name).data as BigInt64Array, Number);
    out.push({ k, ids: ints(`prompt_${k}.input_ids`), logits: f.readF32(`prompt_${k}.logits`), greedy: ints(`prompt_${k}.greedy`) });
  }
  return out;
}

async function collect(chunks: AsyncIterable<GenerationChunk>): Promise<{ tokens: number[]; text: string; last: GenerationChunk }> {
  const tokens: number[] = [];
  let text = '';
  let last: GenerationChunk | undefined;
  for await (const c of chunks) {
    tokens.push(...c.tokenIds);
    text += c.text;
    last = c;
  }
  if (!last) throw new Error('no chunks');
  return { tokens, text, last };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const greedy = (ids: number[], maxTokens = 24) => ({ promptIds: ids, params: { temperature: 0, ignoreEos: true, maxTokens } });

describe.each(MODELS)('reference model %s', (model) => {
  const prompts = refPrompts(model);
  let engine: Engine;
  beforeAll(async () => { engine = await Engine.load(path.join(REF, model), { backend: 'cpu' }); });
  afterAll(async () => { await engine?.close(); });

  test('greedy decoding reproduces prompt_K.greedy, one at a time', async () => {
    for (const p of prompts) {
      const { tokens, last } = await collect(engine.generate(greedy(p.ids)));
      expect({ k: p.k, tokens }).toEqual({ k: p.k, tokens: p.greedy });
      expect(last.finishReason).toBe('length');
      expect(last.usage).toEqual({ promptTokens: p.ids.length, completionTokens: 24, cachedTokens: expect.any(Number) });
    }
  });

  test('greedy decoding reproduces prompt_K.greedy, all prompts at once', async () => {
    const results = await Promise.all(prompts.map((p) => collect(engine.generate(greedy(p.ids)))));
    results.forEach((r, i) => expect({ k: i, tokens: r.tokens }).toEqual({ k: i, tokens: prompts[i].greedy }));
  });

  test('logits() matches prompt_K.logits', async () => {
    for (const p of prompts) {
      const logits = await engine.logits(p.ids);
      expect(maxAbsDiff(logits, p.logits)).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('finish reasons (mistral-gqa-swa: prompt 3\'s greedy run reaches EOS)', () => {
  const model = path.join(REF, 'mistral-gqa-swa');
  const prompts = refPrompts('mistral-gqa-swa');
  let engine: Engine;
  beforeAll(async () => { engine = await Engine.load(model, { backend: 'cpu' }); });
  afterAll(async () => { await engine?.close(); });

  test('EOS, a stop token id and max tokens each end a request as themselves, with the token that did it', async () => {
    const g3 = prompts[3].greedy;
    const eosAt = g3.indexOf(2);
    expect(eosAt).toBeGreaterThanOrEqual(0);
    const eos = await collect(engine.generate({ promptIds: prompts[3].ids, params: { temperature: 0, maxTokens: 24 } }));
    expect(eos.tokens).toEqual(g3.slice(0, eosAt + 1));
    expect(eos.last).toMatchObject({ finishReason: 'eos', stopTokenId: 2 });

    const g1 = prompts[1].greedy;
    const stop = await collect(engine.generate({ promptIds: prompts[1].ids, params: { temperature: 0, ignoreEos: true, maxTokens: 24, stopTokenIds: [g1[5]] } }));
    expect(stop.tokens).toEqual(g1.slice(0, g1.indexOf(g1[5]) + 1));
    expect(stop.last).toMatchObject({ finishReason: 'stop_token', stopTokenId: g1[5] });

    // EOS as a stop token id, with ignoreEos: the request's own stop token.
    const asStop = await collect(engine.generate({ promptIds: prompts[3].ids, params: { temperature: 0, maxTokens: 24, ignoreEos: true, stopTokenIds: [2] } }));
    expect(asStop.last).toMatchObject({ finishReason: 'stop_token', stopTokenId: 2 });

    const length = await collect(engine.generate(greedy(prompts[3].ids)));
    expect(length.tokens).toHaveLength(24);
    expect(length.last.finishReason).toBe('length');
    expect(length.last.stopTokenId).toBeUndefined();
  });
});

describe('engine behaviour', () => {
  const model = path.join(REF, 'llama-gqa-theta');
  const long = refPrompts('llama-gqa-theta').find((p) => p.ids.length === 100)!.ids;
  let engine: Engine;
  beforeAll(async () => { engine = await Engine.load(model, { backend: 'cpu' }); });
  afterAll(async () => { await engine?.close(); });

  test('config and stats', () => {
    expect(engine.config.vocabSize).toBe(320);
    expect(engine.config.numKvHeads).toBe(1);
    expect(engine.config.dtype).toBe('f32');
    expect(engine.backend).toBe('cpu');
    expect(engine.stats().numBlocksTotal).toBeGreaterThan(0);
  });

  test('the event loop keeps running during a generation', async () => {
    let last = Date.now();
    let maxGap = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = Date.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) =>
      collect(engine.generate({ promptIds: long, params: { temperature: 1, seed: i, ignoreEos: true, maxTokens: 400 } }))));
    const duration = Date.now() - t0;
    clearInterval(timer);
    // A blocked loop would show one gap as long as the whole generation.
    expect(ticks).toBeGreaterThan(0);
    expect(maxGap).toBeLessThan(Math.max(50, duration / 4));
  });

  test('leaving the loop aborts the request and frees its blocks', async () => {
    const stream = engine.generate({ ...greedy(long, 400) });
    for await (const chunk of stream) {
      expect(chunk.tokenIds.length).toBeGreaterThan(0);
      break;
    }
    await waitFor(() => engine.numInFlight === 0);
    await waitFor(() => { const s = engine.stats(); return s.numRunning + s.numWaiting === 0; });
    expect(engine.stats().numBlocksUsed).toBe(0);
  });

  test('abort(id) ends the stream with finishReason abort', async () => {
    const stream = engine.generate({ id: 4242, ...greedy(long, 400) });
    engine.abort(4242);
    const { tokens, last } = await collect(stream);
    expect(last.finishReason).toBe('abort');
    expect(tokens.length).toBeLessThan(400);
    expect(engine.stats().numBlocksUsed).toBe(0);
  });

  test('bad requests throw clear errors', () => {
    expect(() => engine.generate({ promptIds: [5, 320] })).toThrow(/range|vocab/i);
    expect(() => engine.generate({ promptIds: [] })).toThrow();
    expect(() => engine.generate({ promptIds: [1.5] as number[] })).toThrow(/integer/);
    expect(() => engine.generate({ prompt: 'hello' })).toThrow(/tokenizer/);
    expect(() => engine.generate({ promptIds: [5], prompt: 'x' })).toThrow(/exactly one/);
    expect(() => engine.generate({ promptIds: Array(600).fill(5) })).toThrow();
    expect(engine.numInFlight).toBe(0);
  });

  test('logprobs and prompt logits come with the chunks', async () => {
    const chunks: GenerationChunk[] = [];
    for await (const c of engine.generate({ promptIds: long.slice(0, 9), params: { temperature: 0, ignoreEos: true, maxTokens: 3, logprobs: 2 }, promptLogits: true })) chunks.push(c);
    const withTokens = chunks.filter((c) => c.tokenIds.length);
    expect(withTokens.length).toBeGreaterThan(0);
    for (const c of withTokens) {
      expect(c.logprobs).toHaveLength(c.tokenIds.length);
      expect(c.top![0]).toHaveLength(2);
      // Greedy: the chosen token is the most likely one.
      expect(c.top![0][0].token).toBe(c.tokenIds[0]);
      expect(c.logprobs![0]).toBeCloseTo(c.top![0][0].logprob, 5);
    }
    const last = chunks[chunks.length - 1];
    expect(Object.prototype.toString.call(last.promptLogits)).toBe('[object Float32Array]');  // another realm under jest
    expect(last.promptLogits!.length).toBe(9 * 320);
  });

  test('promptLogprobs: log-softmax of the prompt logits, every position, even when the prefix is cached', async () => {
    const ids = long.slice(0, 40);
    const logits = await engine.logits(ids);
    // Cache the prefix first: a prompt-logprobs request must still compute every position.
    await collect(engine.generate(greedy(ids, 1)));
    const lp = await engine.promptLogprobs(ids);
    expect(lp).toHaveLength(ids.length - 1);
    for (let i = 0; i + 1 < ids.length; i++) {
      const row = logits.subarray(i * 320, (i + 1) * 320);
      let max = -Infinity, sum = 0;
      for (const x of row) max = Math.max(max, x);
      for (const x of row) sum += Math.exp(x - max);
      const want = row[ids[i + 1]] - max - Math.log(sum);
      expect(Math.abs(lp[i] - want)).toBeLessThanOrEqual(Math.abs(want) * 2 ** -23);   // float32 rounding of a double
    }
    expect(await engine.promptLogprobs([ids[0]])).toHaveLength(0);
    expect(engine.quantization).toBe('none');
  });

  test('a seed gives the same tokens', async () => {
    const req = { promptIds: long.slice(0, 10), params: { temperature: 1, seed: 7, ignoreEos: true, maxTokens: 16 } };
    const [a, b] = await Promise.all([collect(engine.generate(req)), collect(engine.generate(req))]);
    expect(a.tokens).toEqual(b.tokens);
  });

  test('close is safe twice, and generate after close throws', async () => {
    const e = await Engine.load(model, { backend: 'cpu' });
    const pending = collect(e.generate(greedy(long, 400)));
    await Promise.all([e.close(), e.close()]);
    await e.close();
    expect((await pending).last.finishReason).toBe('abort');
    expect(() => e.generate(greedy(long))).toThrow(/closed/);
  });

  test('GPU memory options out of range are refused by name', async () => {
    await expect(Engine.load(model, { backend: 'cpu', gpuMemoryFraction: 1.5 }))
      .rejects.toThrow(/options\.gpuMemoryFraction must be a number in \(0, 1\]/);
    await expect(Engine.load(model, { backend: 'cpu', gpuMemoryBudget: -1 }))
      .rejects.toThrow(/options\.gpuMemoryBudget must be an integer/);
  });

  test('a load error rejects with the loader\'s message', async () => {
    await expect(Engine.load(path.join(REF, 'no-such-model'))).rejects.toThrow(/config\.json|no-such-model/);
  });

  test('an idle engine lets node exit; a busy one keeps it alive', () => {
    const script = `
      const addon = require(${JSON.stringify(ADDON)});
      addon.loadEngine(${JSON.stringify(model)}, { backend: 'cpu' }, (outs) => {
        for (const o of outs) if (o.finish) console.log('finished', o.id, o.finish);
      }).then((e) => { e.submit(1, [5, 6, 7], { maxTokens: 50, temperature: 0 }, false); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('finished 1 length');
  });
});

describe('text (tiny model with a tokenizer)', () => {
  let dir: string;
  let engine: Engine;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-engine-'));
    makeModel({ shape: 'tiny', out: dir, dtype: 'f32', seed: 3 });
    engine = await Engine.load(dir, { backend: 'cpu' });
  });
  afterAll(async () => {
    await engine?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('streamed text is the decoded tokens', async () => {
    const { tokens, text, last } = await collect(engine.generate({ prompt: 'Once upon a time', params: { temperature: 0, ignoreEos: true, maxTokens: 20 } }));
    expect(tokens).toHaveLength(20);
    // The decoder keeps the first token's leading space (it decodes with the prompt as context).
    expect(text.replace(/^ /, '')).toBe(engine.tokenizer!.decode(tokens, { skipSpecial: true }).replace(/^ /, ''));
    expect(last.usage!.promptTokens).toBe(engine.tokenizer!.encode('Once upon a time').length);
  });

  test('chat messages go through the chat template', async () => {
    const { last } = await collect(engine.generate({ messages: [{ role: 'user', content: 'Hi' }], params: { temperature: 0, maxTokens: 4 } }));
    const ids = engine.promptIds({ messages: [{ role: 'user', content: 'Hi' }] });
    expect(last.usage!.promptTokens).toBe(ids.length);
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);  // the template writes BOS once
  });

  test('a stop string cuts the text and ends the request', async () => {
    const base = { prompt: 'Once upon a time', params: { temperature: 0, ignoreEos: true, maxTokens: 40 } };
    const full = (await collect(engine.generate(base))).text;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const { text, last } = await collect(engine.generate({ ...base, stop: [stop] }));
    expect(text).toBe(full.slice(0, full.indexOf(stop)));
    expect(last.finishReason).toBe('stop_string');
    expect(last.stopString).toBe(stop);
    await waitFor(() => engine.numInFlight === 0);
  });

  test('an EOS id from generation_config.json (not config.json\'s) ends a request as eos', async () => {
    const params = { temperature: 0, maxTokens: 12 };
    const free = await collect(engine.generate({ prompt: 'Once upon a time', params }));
    expect(free.last.finishReason).toBe('length');
    const eos = free.tokens[4];
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-engine-eos-'));
    for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(other, f));
    fs.writeFileSync(path.join(other, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, eos] }));
    const e = await Engine.load(other, { backend: 'cpu' });
    try {
      expect(e.config.eosTokenIds).toEqual([2]);
      const { tokens, last } = await collect(e.generate({ prompt: 'Once upon a time', params }));
      expect(tokens).toEqual(free.tokens.slice(0, free.tokens.indexOf(eos) + 1));
      expect(last).toMatchObject({ finishReason: 'eos', stopTokenId: eos });
      const ignored = await collect(e.generate({ prompt: 'Once upon a time', params: { ...params, ignoreEos: true } }));
      expect(ignored.tokens).toEqual(free.tokens);
    } finally {
      await e.close();
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  test('a tokenizer EOS outside the model\'s vocabulary is refused at load, by name', async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-engine-eos-'));
    try {
      for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(other, f));
      const tok = JSON.parse(fs.readFileSync(path.join(other, 'tokenizer.json'), 'utf8'));
      tok.added_tokens.push({ id: 32000, content: '<eot>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
      fs.writeFileSync(path.join(other, 'tokenizer.json'), JSON.stringify(tok));
      const cfg = JSON.parse(fs.readFileSync(path.join(other, 'tokenizer_config.json'), 'utf8'));
      fs.writeFileSync(path.join(other, 'tokenizer_config.json'), JSON.stringify({ ...cfg, eos_token: '<eot>' }));
      await expect(Engine.load(other, { backend: 'cpu' }))
        .rejects.toThrow(/the tokenizer's EOS token id 32000 \(tokenizer_config\.json eos_token or generation_config\.json eos_token_id\) is outside the model's vocabulary \[0, 32000\)/);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
