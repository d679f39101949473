// generation_config.json -> the sampling defaults a request's missing fields take (as vLLM applies
// them). Checked at load: a field of the wrong type or out of range is ignored with a warning that
// names it (so a bad default never makes every request fail); a file that is not a JSON object
// is an error naming the file. `gyre validate` reports both.
import * as path from 'node:path';
import { modelFileExists, readModelJson } from './model_file';

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

const INT32_MAX = 2 ** 31 - 1;

type Check = { key: keyof ModelDefaults; ok: (v: unknown) => boolean; range: string };
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);

const FIELDS: Record<string, Check> = {
  do_sample: { key: 'doSample', ok: (v) => typeof v === 'boolean', range: 'true or false' },
  temperature: { key: 'temperature', ok: (v) => isNum(v) && v >= 0 && v <= 100, range: 'a number in [0, 100]' },
  top_p: { key: 'topP', ok: (v) => isNum(v) && v > 0 && v <= 1, range: 'a number in (0, 1]' },
  top_k: { key: 'topK', ok: (v) => isInt(v) && v >= 0 && v <= INT32_MAX, range: `an integer in [0, ${INT32_MAX}]` },
  min_p: { key: 'minP', ok: (v) => isNum(v) && v >= 0 && v <= 1, range: 'a number in [0, 1]' },
  repetition_penalty: { key: 'repetitionPenalty', ok: (v) => isNum(v) && v > 0 && v <= 100, range: 'a number in (0, 100]' },
  max_new_tokens: { key: 'maxNewTokens', ok: (v) => isInt(v) && v > 0 && v <= INT32_MAX, range: `an integer in [1, ${INT32_MAX}]` },
};

export interface GenerationConfig {
  defaults: ModelDefaults;
  /** One per ignored field, naming the file and the field. */
  warnings: string[];
}

/** Reads <dir>/generation_config.json (none: no defaults). Throws, naming the file, when it is not
 *  a readable JSON object. vocabSize bounds the token id fields when given. */
export function readGenerationConfig(dir: string, vocabSize?: number): GenerationConfig {
  const out: GenerationConfig = { defaults: {}, warnings: [] };
  const NAME = 'generation_config.json';
  if (!modelFileExists(dir, NAME)) return out;
  const file = path.join(dir, NAME);
  const g = readModelJson(dir, NAME)!;
  const shown = (v: unknown) => JSON.stringify(v)?.slice(0, 40) ?? String(v);
  for (const [field, check] of Object.entries(FIELDS)) {
    const v = g[field];
    if (v === undefined || v === null) continue;
    if (check.ok(v)) (out.defaults as Record<string, unknown>)[check.key] = v;
    else out.warnings.push(`${file}: field '${field}' is ${shown(v)}, expected ${check.range}; it is ignored`);
  }
  const id = (v: unknown) => isInt(v) && v >= 0 && (vocabSize === undefined || v < vocabSize);
  for (const field of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    const v = g[field];
    if (v === undefined || v === null) continue;
    const ok = Array.isArray(v) ? v.length <= 64 && v.every(id) : id(v);
    if (!ok) out.warnings.push(`${file}: field '${field}' is ${shown(v)}, expected token ids in [0, ${vocabSize ?? 'vocab_size'}); it is ignored`);
  }
  return out;
}
