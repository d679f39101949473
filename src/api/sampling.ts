// Both vocabularies (TGI parameters, OpenAI fields) are mapped, each once, onto the engine's own
// SamplingParams; here those are checked against the context and completed, one engine request per
// choice. Fields a request leaves out take the model's generation_config.json defaults; max tokens
// default to DEFAULT_MAX_NEW_TOKENS.
import type { GenerationRequest, SamplingParams } from '../engine/engine';
import type { ApiStyle } from './errors';
import { validationError } from './errors';
import type { ServedModel } from './model';

/** What a request asks besides sampling: stop strings, prompt logits, a grammar. */
export type RequestExtras = Pick<GenerationRequest, 'stop' | 'promptLogits' | 'grammar'>;

/** o without its null and undefined fields (zod gives null for "not given"). */
export function given<T extends object>(o: { [K in keyof T]: T[K] | null | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v != null) out[k] = v;
  return out as T;
}

/** How a style names things in its messages. */
interface Names { maxTokens: string; prompt: string }
const NAMES: Record<ApiStyle, Names> = {
  tgi: { maxTokens: 'max_new_tokens', prompt: 'inputs' },
  openai: { maxTokens: 'max_tokens', prompt: 'prompt' },
};

const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * New tokens when neither the request nor generation_config.json sets a limit, on every surface
 * (TGI, OpenAI, gyre generate). Not the rest of the context: a forgotten limit would then run
 * ~2,000 tokens, past SageMaker's 60 s. 256 fits a chat answer (~10 s for a 7B model on an A10G,
 * estimated from its bandwidth); TGI's own /generate default (100) cuts chat answers mid-sentence.
 */
export const DEFAULT_MAX_NEW_TOKENS = 256;

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

/** The number of new tokens: as asked (if it fits the context), else the model's or Gyre's default,
 *  capped by the rest of the context. */
export function resolveMaxTokens(model: ServedModel, promptLen: number, asked: number | undefined, style: ApiStyle): number {
  const ctx = model.limits.maxModelLen;
  const room = ctx - promptLen;
  if (asked === undefined) return Math.max(1, Math.min(room, model.defaults.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS));
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
 * One engine request per (prompt, choice): choice c of prompt p has index p * n + c. params.maxTokens
 * is as asked; temperature 0 is greedy. Sampled choices without a seed get a drawn one (reported
 * back, so a result can be reproduced); choice c uses seed + c so that n choices differ.
 */
export function planRequests(model: ServedModel, prompts: number[][], n: number, params: SamplingParams,
                             extras: RequestExtras, style: ApiStyle): Plan {
  const d = model.defaults;
  const { maxTokens: asked, seed, topP, topK, minP, ...rest } = params;
  const temperature = params.temperature ?? d.temperature ?? 1;
  // The warpers apply only when sampling; the defaults fill what the request left out.
  const base: SamplingParams = given<SamplingParams>({
    ...rest, temperature, repetitionPenalty: params.repetitionPenalty ?? d.repetitionPenalty,
    ...(temperature > 0 ? { topP: topP ?? d.topP, topK: topK ?? d.topK, minP: minP ?? d.minP } : {}),
  });
  const more = given<RequestExtras>({ ...extras, stop: extras.stop?.filter((x) => x.length > 0) });
  const plan: Plan = { requests: [], seeds: [], promptIds: [] };
  const firstSeed = temperature > 0 ? (seed ?? Math.floor(Math.random() * 2 ** 32)) : null;
  for (const ids of prompts) {
    const maxTokens = resolveMaxTokens(model, ids.length, asked, style);
    for (let c = 0; c < n; c++) {
      const choiceSeed = firstSeed === null ? null : (firstSeed + c) % MAX_SEED;
      const choiceParams: SamplingParams = { ...base, maxTokens };
      if (choiceSeed !== null) choiceParams.seed = choiceSeed;
      plan.requests.push({ ...more, promptIds: ids, params: choiceParams });
      plan.seeds.push(choiceSeed);
      plan.promptIds.push(ids);
    }
  }
  return plan;
}
