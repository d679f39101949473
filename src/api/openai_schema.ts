// OpenAI's chat and completions request bodies (and vLLM's extensions: top_k, min_p,
// repetition_penalty, ignore_eos, stop_token_ids, guided_*). Ranges follow OpenAI's API reference;
// null means "not given". Features we do not have (tools, logit_bias) are refused rather than
// silently ignored.
import { z } from 'zod';
import { guidedFields, responseFormatSchema } from './structured_output';
import { MAX_STOP_SEQUENCES } from './tgi_request';

export const MAX_N = 16;
export const MAX_TOP_LOGPROBS = 20;

const sampling = {
  model: z.string().nullish(),
  max_tokens: z.int().min(1).nullish(),
  max_completion_tokens: z.int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  seed: z.int().min(0).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(MAX_STOP_SEQUENCES)],
    { error: `must be a string or an array of at most ${MAX_STOP_SEQUENCES} strings` }).nullish(),
  stop_token_ids: z.array(z.int().min(0)).max(64).nullish(),
  ignore_eos: z.boolean().nullish(),
  n: z.int().min(1).max(MAX_N).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().nullish(),
  logit_bias: z.record(z.string(), z.number()).refine((m) => Object.keys(m).length === 0,
    { error: 'logit_bias is not supported' }).nullish(),
  response_format: responseFormatSchema.nullish(),
  ...guidedFields,
};

const textPart = z.object({
  type: z.literal('text', { error: 'only "text" content parts are supported' }),
  text: z.string(),
});

const message = z.object({
  role: z.string(),
  content: z.union([z.string(), z.array(textPart)],
    { error: 'must be a string or an array of {"type": "text", "text": string} parts' }).nullish(),
  name: z.string().nullish(),
});

export const chatSchema = z.object({
  ...sampling,
  messages: z.array(message).min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  tools: z.array(z.unknown()).max(0, { error: 'tools are not supported' }).nullish(),
  tool_choice: z.literal('none', { error: 'tool_choice is not supported' }).nullish(),
});

const tokenIds = z.array(z.int().min(0)).min(1);

export const completionSchema = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)],
    { error: 'must be a string, an array of strings, an array of token ids, or an array of arrays of token ids' }),
  logprobs: z.int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  echo: z.boolean().nullish(),
  best_of: z.int().min(1).nullish(),
  suffix: z.null({ error: 'suffix is not supported' }).optional(),
  // Refused exactly as chat refuses them, rather than silently ignored.
  tools: z.array(z.unknown()).max(0, { error: 'tools are not supported' }).nullish(),
  tool_choice: z.literal('none', { error: 'tool_choice is not supported' }).nullish(),
});

export type ChatBody = z.infer<typeof chatSchema>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type OpenAiBody = ChatBody | CompletionBody;
