// What the API layer knows about the served model: the engine, its limits, the sampling defaults
// of its generation_config.json (as vLLM applies them), and per-token texts for logprobs.
import type { Engine } from '../engine/engine';
import { type ModelDefaults, readGenerationConfig } from '../model/generation_config';
import { TokenTexts } from './token_texts';

export type { ModelDefaults } from '../model/generation_config';

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

/** <dir>/generation_config.json's valid defaults (invalid fields are ignored; `gyre validate`
 *  names them). Throws, naming the file, for a file that is not a JSON object. */
export function readModelDefaults(dir: string, vocabSize?: number): ModelDefaults {
  return readGenerationConfig(dir, vocabSize).defaults;
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
    defaults: readModelDefaults(engine.modelDir, engine.config.vocabSize),
    limits: { maxModelLen, maxInputTokens: input },
    tokens: new TokenTexts(engine.tokenizer, engine.config),
  };
}
