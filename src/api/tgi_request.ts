// The TGI request body {"inputs": "...", "parameters": {...}, "stream": bool} (TGI's /generate,
// /generate_stream and SageMaker's /invocations), checked and mapped onto the engine's SamplingParams.
// Ranges follow TGI's validation; min_p, presence_penalty, ignore_eos and stop_token_ids are
// extensions. Null means "not given", as in TGI.
import { z } from 'zod';
import { validationError } from './errors';
import type { ServedModel } from './model';
import type { SamplingParams } from '../engine/engine';
import { type Plan, checkPromptChars, checkPromptIds, given, planRequests } from './sampling';
import { compileGrammar, tgiGrammar, tgiGrammarSchema } from './structured_output';
import { parseBody, unknownFields } from './validate';

export const MAX_STOP_SEQUENCES = 16;
export const MAX_TOP_N_TOKENS = 20;
// decoder_input_details returns every prompt position's logits [n, vocab] from the engine.
export const MAX_DECODER_INPUT_TOKENS = 1024;

const stop = z.union([z.string(), z.array(z.string()).max(MAX_STOP_SEQUENCES)],
  { error: `must be a string or an array of at most ${MAX_STOP_SEQUENCES} strings` });

const parametersSchema = z.object({
  max_new_tokens: z.int().min(1).nullish(),
  do_sample: z.boolean().nullish(),
  temperature: z.number().gt(0).nullish(),
  top_k: z.int().min(1).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  typical_p: z.number().gt(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  seed: z.int().min(0).nullish(),
  stop: stop.nullish(),
  stop_token_ids: z.array(z.int().min(0)).max(64).nullish(),
  ignore_eos: z.boolean().nullish(),
  return_full_text: z.boolean().nullish(),
  details: z.boolean().nullish(),
  decoder_input_details: z.boolean().nullish(),
  top_n_tokens: z.int().min(0).max(MAX_TOP_N_TOKENS).nullish(),
  truncate: z.int().min(1).nullish(),
  best_of: z.int().min(1).max(1, { error: 'best_of > 1 is not supported' }).nullish(),
  watermark: z.literal(false, { error: 'watermark is not supported' }).nullish(),
  grammar: tgiGrammarSchema.nullish(),
  adapter_id: z.null({ error: 'adapter_id is not supported' }).optional(),
});

const bodySchema = z.object({
  inputs: z.string(),
  parameters: parametersSchema.nullish(),
  stream: z.boolean().nullish(),
});

export type TgiParameters = z.infer<typeof parametersSchema>;

export interface TgiRequest {
  inputs: string;
  parameters: TgiParameters;
  stream: boolean;
  unknown: string[];         // ignored fields, for the log
}

/** Checks a TGI body. streamRoute: true for /generate_stream, false for /generate (TGI's
 *  GenerateRequest has no "stream"), undefined where the body decides. */
export function parseTgi(body: unknown, streamRoute?: boolean): TgiRequest {
  const b = parseBody(bodySchema, body, 'body');
  const parameters = b.parameters ?? {};
  const req: TgiRequest = {
    inputs: b.inputs,
    parameters,
    stream: streamRoute ?? b.stream ?? false,
    unknown: [
      ...unknownFields(body, Object.keys(bodySchema.shape)),
      ...unknownFields((body as Record<string, unknown>).parameters, Object.keys(parametersSchema.shape), 'parameters.'),
    ],
  };
  tgiGrammar(parameters.grammar);   // a malformed schema or regex is refused before any work
  if (req.stream && parameters.decoder_input_details) {
    throw validationError('Input validation error: `decoder_input_details` == true is not supported when streaming tokens', 'decoder_input_details');
  }
  return req;
}

/** TGI samples when do_sample is set or any warper is given (even with do_sample false);
 *  otherwise it decodes greedily, unless generation_config.json says do_sample. */
function tgiParams(p: TgiParameters, model: ServedModel): SamplingParams {
  const warpers = (p.temperature != null && p.temperature !== 1) || p.top_k != null || (p.top_p != null && p.top_p < 1)
    || (p.typical_p != null && p.typical_p < 1) || (p.min_p != null && p.min_p > 0);
  const doSample = warpers || (p.do_sample ?? model.defaults.doSample ?? false);
  return given<SamplingParams>({
    maxTokens: p.max_new_tokens, temperature: doSample ? p.temperature : 0, topK: p.top_k, topP: p.top_p,
    minP: p.min_p, repetitionPenalty: p.repetition_penalty, frequencyPenalty: p.frequency_penalty,
    presencePenalty: p.presence_penalty, seed: p.seed, stopTokenIds: p.stop_token_ids, ignoreEos: p.ignore_eos,
    logprobs: p.top_n_tokens ?? 0,
  });
}

/** Tokenizes inputs and plans the engine request (TGI has one choice). */
export async function planTgi(req: TgiRequest, model: ServedModel): Promise<Plan> {
  const tokenizer = model.engine.tokenizer;
  if (!tokenizer) throw validationError(`this model has no tokenizer.json, so \`inputs\` text cannot be tokenized; use /v1/completions with token ids`, 'inputs');
  const p = req.parameters;
  // Truncation keeps the last tokens: only the text that can hold them is tokenized.
  let text = req.inputs;
  if (p.truncate == null) checkPromptChars(model, text.length, 'tgi');
  else text = text.slice(-(p.truncate + 1) * model.tokens.maxTokenChars);
  let ids = await model.engine.encodePrompt({ prompt: text });
  if (p.truncate != null && ids.length > p.truncate) ids = ids.slice(-p.truncate);
  checkPromptIds(model, ids, 'tgi');
  if (p.decoder_input_details && ids.length > MAX_DECODER_INPUT_TOKENS) {
    throw validationError(`decoder_input_details is limited to prompts of ${MAX_DECODER_INPUT_TOKENS} tokens; this one has ${ids.length}`, 'decoder_input_details');
  }
  const grammar = await compileGrammar(model, tgiGrammar(p.grammar));
  const stop = p.stop == null ? undefined : typeof p.stop === 'string' ? [p.stop] : p.stop;
  return planRequests(model, [ids], 1, tgiParams(p, model),
    { stop, grammar, promptLogits: p.decoder_input_details || undefined }, 'tgi');
}
