// What the API layer knows about the served model: the engine, its limits, the sampling defaults
// of its generation_config.json (as vLLM applies them), and per-token texts for logprobs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Engine } from '../engine/engine';
import { TokenTexts } from './token_texts';

/** Sampling defaults from generation_config.json; fields a request leaves out take these. */
export interface ModelDefaults {
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}

export interface ModelLimits {
  maxModelLen: number;      // prompt + generated tokens
  maxInputTokens: number;   // longest prompt
}

export interface ServedModel {
  engine: Engine;
  name: string;             // the model id reported by /info and /v1/models
  defaults: ModelDefaults;
  limits: ModelLimits;
  tokens: TokenTexts;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Reads <dir>/generation_config.json; a missing or unreadable file gives no defaults. */
export function readModelDefaults(dir: string): ModelDefaults {
  let g: Record<string, unknown>;
  try {
    g = JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8'));
  } catch {
    return {};
  }
  if (typeof g !== 'object' || g === null) return {};
  const d: ModelDefaults = {};
  if (typeof g.do_sample === 'boolean') d.doSample = g.do_sample;
  const t = num(g.temperature);
  if (t !== undefined && t >= 0) d.temperature = t;
  const p = num(g.top_p);
  if (p !== undefined && p > 0 && p <= 1) d.topP = p;
  const k = num(g.top_k);
  if (k !== undefined && Number.isInteger(k) && k >= 0) d.topK = k;
  const m = num(g.min_p);
  if (m !== undefined && m >= 0 && m <= 1) d.minP = m;
  const r = num(g.repetition_penalty);
  if (r !== undefined && r > 0) d.repetitionPenalty = r;
  const n = num(g.max_new_tokens);
  if (n !== undefined && Number.isInteger(n) && n > 0) d.maxNewTokens = n;
  return d;
}

export function servedModel(engine: Engine, name: string, maxInputTokens?: number): ServedModel {
  const maxModelLen = engine.maxModelLen;
  const input = maxInputTokens ?? maxModelLen - 1;
  if (input < 1 || input >= maxModelLen) {
    throw new Error(`max input tokens (${input}) must be at least 1 and less than the context length (${maxModelLen})`);
  }
  return {
    engine,
    name,
    defaults: readModelDefaults(engine.modelDir),
    limits: { maxModelLen, maxInputTokens: input },
    tokens: new TokenTexts(engine.tokenizer, engine.config),
  };
}
