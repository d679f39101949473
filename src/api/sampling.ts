// Both vocabularies (TGI parameters, OpenAI fields) normalized to one Sampling, then checked
// against the context and turned into engine requests, one per choice. Fields a request leaves out
// take the model's generation_config.json defaults; max tokens default to the rest of the context.
import type { GenerationRequest, Grammar } from '../engine/engine';
import type { ApiStyle } from './errors';
import { validationError } from './errors';
import type { ServedModel } from './model';

export interface Sampling {
  maxTokens?: number;
  greedy?: boolean;          // TGI do_sample=false without warpers; OpenAI temperature=0
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop?: string[];
  stopTokenIds?: number[];
  ignoreEos?: boolean;
  logprobs?: number;         // 0: chosen token's; k: plus the top k
  promptLogits?: boolean;
  grammar?: Grammar;         // structured output
}

/** How a style names things in its messages. */
interface Names { maxTokens: string; prompt: string }
const NAMES: Record<ApiStyle, Names> = {
  tgi: { maxTokens: 'max_new_tokens', prompt: 'inputs' },
  openai: { maxTokens: 'max_tokens', prompt: 'prompt' },
};

const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** Refuses text that cannot fit in the input limit, before tokenizing it (tokenizing is slow). */
export function checkPromptChars(model: ServedModel, chars: number, style: ApiStyle, param?: string): void {
  const limit = model.limits.maxInputTokens * model.tokens.maxTokenChars;
  if (chars > limit) {
    const prompt = param ?? NAMES[style].prompt;
    throw validationError(`${prompt} is too long: ${chars} characters cannot fit in the ${model.limits.maxInputTokens}-token input limit`, prompt);
  }
}

/** Checks a tokenized prompt against the vocabulary and the input limit. */
export function checkPromptIds(model: ServedModel, ids: readonly number[], style: ApiStyle, param?: string): void {
  const name = param ?? NAMES[style].prompt;
  if (ids.length === 0) throw validationError(`${name} is empty`, name);
  const vocab = model.engine.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) throw validationError(`${name}: token id ${ids[bad]} at position ${bad} is outside the vocabulary [0, ${vocab})`, name);
  const max = model.limits.maxInputTokens;
  if (ids.length > max) {
    throw validationError(style === 'tgi'
      ? `Input validation error: \`inputs\` must have at most ${max} tokens. Given: ${ids.length}`
      : `This model's maximum input length is ${max} tokens. However, your prompt has ${ids.length} tokens.`, name);
  }
}

/** The number of new tokens: as asked (if it fits the context) or the rest of the context. */
export function resolveMaxTokens(model: ServedModel, promptLen: number, asked: number | undefined, style: ApiStyle): number {
  const ctx = model.limits.maxModelLen;
  const room = ctx - promptLen;
  if (asked === undefined) return Math.max(1, Math.min(room, model.defaults.maxNewTokens ?? room));
  if (promptLen + asked > ctx) {
    const { maxTokens, prompt } = NAMES[style];
    throw validationError(style === 'tgi'
      ? `Input validation error: \`inputs\` tokens + \`max_new_tokens\` must be <= ${ctx}. Given: ${promptLen} \`inputs\` tokens and ${asked} \`max_new_tokens\``
      : `This model's maximum context length is ${ctx} tokens. However, you requested ${promptLen + asked} tokens (${promptLen} in the ${prompt}, ${asked} in the completion). Please reduce the length of the ${prompt} or completion.`,
    maxTokens);
  }
  return asked;
}

export interface Plan {
  requests: GenerationRequest[];   // one per choice, in choice order
  seeds: (number | null)[];        // the seed each choice used (null: greedy)
  promptIds: number[][];           // each choice's prompt
}

/**
 * One engine request per (prompt, choice): choice c of prompt p has index p * n + c. Sampled
 * choices without a seed get a drawn one (reported back, so a result can be reproduced); choice c
 * uses seed + c so that n choices differ.
 */
export function planRequests(model: ServedModel, prompts: number[][], n: number, s: Sampling,
                             style: ApiStyle): Plan {
  const d = model.defaults;
  const temperature = s.greedy ? 0 : (s.temperature ?? d.temperature ?? 1);
  const base: GenerationRequest = { temperature };
  const set = <K extends keyof GenerationRequest>(k: K, v: GenerationRequest[K] | undefined) => {
    if (v !== undefined) base[k] = v;
  };
  if (temperature > 0) {
    set('topP', s.topP ?? d.topP);
    set('topK', s.topK ?? d.topK);
    set('minP', s.minP ?? d.minP);
  }
  set('repetitionPenalty', s.repetitionPenalty ?? d.repetitionPenalty);
  set('presencePenalty', s.presencePenalty);
  set('frequencyPenalty', s.frequencyPenalty);
  set('stop', s.stop?.filter((x) => x.length > 0));
  set('stopTokenIds', s.stopTokenIds);
  set('ignoreEos', s.ignoreEos);
  set('logprobs', s.logprobs);
  set('promptLogits', s.promptLogits);
  set('grammar', s.grammar);
  const plan: Plan = { requests: [], seeds: [], promptIds: [] };
  const firstSeed = temperature > 0 ? (s.seed ?? Math.floor(Math.random() * 2 ** 32)) : null;
  for (const ids of prompts) {
    const maxTokens = resolveMaxTokens(model, ids.length, s.maxTokens, style);
    for (let c = 0; c < n; c++) {
      const seed = firstSeed === null ? null : (firstSeed + c) % MAX_SEED;
      const req: GenerationRequest = { ...base, promptIds: ids, maxTokens };
      if (seed !== null) req.seed = seed;
      plan.requests.push(req);
      plan.seeds.push(seed);
      plan.promptIds.push(ids);
    }
  }
  return plan;
}
