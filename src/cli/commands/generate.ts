// gyre generate: one prompt streamed to stdout, or a JSONL file of prompts run as one batch
// (all in flight at once, bounded by --max-concurrency) with results written in input order.
import * as fs from 'node:fs';
import type { ChatMessage, Engine, GenerationRequest, SamplingParams } from '../../engine/engine';
import { openAiFinishReason } from '../../api/finish_reason';
import { DEFAULT_MAX_NEW_TOKENS } from '../../api/sampling';
import { engineOptions } from './logits';

/** One line of a --prompts file, checked. */
export interface BatchItem {
  line: number;                // 1-based line number in the file
  request: GenerationRequest;
}

const LINE_KEYS: Record<string, keyof SamplingParams> = {
  max_tokens: 'maxTokens', temperature: 'temperature', top_p: 'topP', top_k: 'topK', min_p: 'minP',
  seed: 'seed', ignore_eos: 'ignoreEos',
};

/** Sampling parameters shared by both modes, from the command line. */
function cliParams(opts: Record<string, unknown>): SamplingParams {
  const p: SamplingParams = {};
  if (opts.maxTokens !== undefined) p.maxTokens = opts.maxTokens as number;
  if (opts.temperature !== undefined) p.temperature = opts.temperature as number;
  if (opts.topP !== undefined) p.topP = opts.topP as number;
  if (opts.topK !== undefined) p.topK = opts.topK as number;
  if (opts.minP !== undefined) p.minP = opts.minP as number;
  if (opts.seed !== undefined) p.seed = opts.seed as number;
  if (opts.ignoreEos) p.ignoreEos = true;
  return p;
}

function isInt(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

function checkValue(key: string, v: unknown): string | undefined {
  switch (key) {
    case 'max_tokens': return isInt(v, 0) ? undefined : 'must be an integer >= 0';
    case 'top_k': case 'seed': return isInt(v, 0) ? undefined : 'must be an integer >= 0';
    case 'temperature': case 'top_p': case 'min_p':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? undefined : 'must be a number >= 0';
    case 'ignore_eos': return typeof v === 'boolean' ? undefined : 'must be true or false';
  }
  return undefined;
}

/** Parses one JSONL line into a request (without the command-line defaults). Throws with the problem. */
export function parseLine(text: string): GenerationRequest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
  const o = v as Record<string, unknown>;
  const prompts = ['prompt', 'messages', 'ids'].filter((k) => o[k] !== undefined);
  if (prompts.length !== 1) throw new Error('expected exactly one of "prompt", "messages" or "ids"');
  const req: GenerationRequest = {};
  const params: SamplingParams = {};
  if (o.prompt !== undefined) {
    if (typeof o.prompt !== 'string') throw new Error('"prompt" must be a string');
    req.prompt = o.prompt;
  } else if (o.messages !== undefined) {
    const ok = Array.isArray(o.messages) && o.messages.length > 0 && o.messages.every(
      (m) => typeof m === 'object' && m !== null && typeof m.role === 'string' && typeof m.content === 'string');
    if (!ok) throw new Error('"messages" must be a non-empty array of {"role": string, "content": string}');
    req.messages = o.messages as ChatMessage[];
  } else {
    if (!Array.isArray(o.ids) || o.ids.length === 0) throw new Error('"ids" must be a non-empty array of token ids');
    const bad = o.ids.findIndex((id) => !isInt(id, 0));
    if (bad >= 0) throw new Error(`"ids"[${bad}]: ${JSON.stringify(o.ids[bad])} is not a token id`);
    req.promptIds = o.ids as number[];
  }
  for (const [key, value] of Object.entries(o)) {
    if (key === 'prompt' || key === 'messages' || key === 'ids') continue;
    if (key === 'stop') {
      const stop = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string' && s.length > 0)) {
        throw new Error('"stop" must be a non-empty string or an array of them');
      }
      req.stop = stop;
      continue;
    }
    const field = LINE_KEYS[key];
    if (!field) throw new Error(`unknown field "${key}"`);
    const problem = checkValue(key, value);
    if (problem) throw new Error(`"${key}" ${problem}`);
    (params as Record<string, unknown>)[field] = value;
  }
  if (Object.keys(params).length) req.params = params;
  return req;
}

/** Reads a --prompts file: every non-blank line, checked. */
export function readPrompts(file: string): BatchItem[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const items: BatchItem[] = [];
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    try {
      items.push({ line: i + 1, request: parseLine(text) });
    } catch (e) {
      throw new Error(`${file}:${i + 1}: ${(e as Error).message}`);
    }
  });
  if (!items.length) throw new Error(`${file}: no prompts`);
  return items;
}

export interface BatchResult {
  token_ids: number[];
  text: string;
  finish_reason: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  error?: string;
}

async function collect(chunks: AsyncIterable<import('../../engine/engine').GenerationChunk>): Promise<BatchResult> {
  const r: BatchResult = { token_ids: [], text: '', finish_reason: null, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0 };
  for await (const c of chunks) {
    r.token_ids.push(...c.tokenIds);
    r.text += c.text;
    if (c.finishReason) {
      r.finish_reason = openAiFinishReason(c.finishReason);
      r.prompt_tokens = c.usage?.promptTokens ?? 0;
      r.completion_tokens = c.usage?.completionTokens ?? r.token_ids.length;
      r.cached_tokens = c.usage?.cachedTokens ?? 0;
      if (c.error) r.error = c.error;
    }
  }
  return r;
}

/** A request without maxTokens gets the default (the server's), capped by the rest of the context. */
function limited(engine: Engine, req: GenerationRequest, ids: readonly number[], defaultMaxTokens: number): GenerationRequest {
  if (req.params?.maxTokens !== undefined) return req;
  return { ...req, params: { ...req.params, maxTokens: Math.max(1, Math.min(defaultMaxTokens, engine.maxModelLen - ids.length)) } };
}

export async function runBatch(engine: Engine, items: readonly BatchItem[], defaults: SamplingParams,
                               maxConcurrency = 0, defaultMaxTokens = DEFAULT_MAX_NEW_TOKENS): Promise<BatchResult[]> {
  const vocab = engine.config.vocabSize;
  const requests = items.map(({ line, request }) => {
    const req = { ...request, params: { ...defaults, ...request.params } };
    try {
      const ids = engine.promptIds(req);
      const bad = ids.findIndex((id) => id >= vocab);
      if (bad >= 0) throw new Error(`token id ${ids[bad]} (position ${bad}) is out of range for a vocabulary of ${vocab}`);
      return { ...limited(engine, req, ids, defaultMaxTokens), promptIds: ids, prompt: undefined, messages: undefined };
    } catch (e) {
      throw new Error(`line ${line}: ${(e as Error).message}`);
    }
  });
  const results: BatchResult[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const i = next++;
      let chunks;
      try {
        chunks = engine.generate(requests[i]);
      } catch (e) {
        throw new Error(`line ${items[i].line}: ${(e as Error).message}`);
      }
      results[i] = await collect(chunks);
    }
  };
  const k = maxConcurrency > 0 ? Math.min(maxConcurrency, requests.length) : requests.length;
  await Promise.all(Array.from({ length: k }, worker));
  return results;
}

async function runOne(engine: Engine, opts: Record<string, unknown>, defaultMaxTokens: number): Promise<void> {
  const prompt = String(opts.prompt);
  const text: GenerationRequest = opts.chat ? { messages: [{ role: 'user', content: prompt }] } : { prompt };
  const req = { ...text, params: cliParams(opts) };
  let finish: string | undefined;
  for await (const chunk of engine.generate(limited(engine, req, engine.promptIds(req), defaultMaxTokens))) {
    if (chunk.text) process.stdout.write(chunk.text);
    if (chunk.finishReason) {
      finish = chunk.finishReason;
      if (chunk.finishReason === 'error') throw new Error(chunk.error ?? 'generation failed');
    }
  }
  process.stdout.write('\n');
  if (finish === 'abort') throw new Error('the request was aborted');
}

export async function run(opts: Record<string, unknown>): Promise<void> {
  // Check the prompts file before loading a model.
  const items = opts.prompts !== undefined ? readPrompts(String(opts.prompts)) : undefined;
  const [{ Engine }, { resolveModel }, { readModelDefaults }] = await Promise.all([
    import('../../engine/engine'), import('../../model/model_source'), import('../../api/model')]);
  const { dir } = await resolveModel(String(opts.model));
  const engine = await Engine.load(dir, engineOptions(opts));
  // As the server: generation_config.json's max_new_tokens, else Gyre's default.
  const defaultMaxTokens = readModelDefaults(dir).maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  try {
    if (!items) {
      await runOne(engine, opts, defaultMaxTokens);
      return;
    }
    const t0 = Date.now();
    const results = await runBatch(engine, items, cliParams(opts), (opts.maxConcurrency as number | undefined) ?? 0, defaultMaxTokens);
    const out = String(opts.out);
    fs.writeFileSync(out, results.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const tokens = results.reduce((n, r) => n + r.token_ids.length, 0);
    const secs = (Date.now() - t0) / 1000;
    process.stderr.write(`gyre: ${results.length} prompts, ${tokens} tokens in ${secs.toFixed(2)} s -> ${out}\n`);
  } finally {
    await engine.close();
  }
}
