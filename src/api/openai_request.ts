// OpenAI chat and completions bodies: checked, prompts rendered (chat template) or tokenized, and
// mapped onto the engine's SamplingParams, one engine request per choice.
import { ChatTemplateError } from '../engine/chat_template';
import type { ChatMessage, SamplingParams } from '../engine/engine';
import { validationError } from './errors';
import type { ServedModel } from './model';
import { type ChatBody, type CompletionBody, chatSchema, completionSchema } from './openai_schema';
import { type Plan, checkPromptChars, checkPromptIds, given, planRequests } from './sampling';
import { compileGrammar, openAiGrammar } from './structured_output';
import { parseBody, unknownFields } from './validate';

export const MAX_CHOICES = 64;   // prompts x n in one request

export type OpenAiRequest =
  | { kind: 'chat'; body: ChatBody; stream: boolean; n: number; unknown: string[] }
  | { kind: 'completion'; body: CompletionBody; stream: boolean; n: number; unknown: string[] };

export function parseChat(body: unknown): OpenAiRequest {
  const b = parseBody(chatSchema, body, 'body');
  if (b.top_logprobs && !b.logprobs) throw validationError('top_logprobs needs logprobs: true', 'top_logprobs');
  openAiGrammar(b);   // a malformed schema or regex is refused before any work
  return { kind: 'chat', body: b, stream: b.stream ?? false, n: b.n ?? 1, unknown: unknownFields(body, Object.keys(chatSchema.shape)) };
}

export function parseCompletion(body: unknown): OpenAiRequest {
  const b = parseBody(completionSchema, body, 'body');
  const n = b.n ?? 1;
  if (b.best_of != null && b.best_of !== n) throw validationError(`best_of (${b.best_of}) must equal n (${n}): best_of > n is not supported`, 'best_of');
  if (b.echo && b.logprobs != null) throw validationError('echo together with logprobs is not supported', 'echo');
  openAiGrammar(b);
  return { kind: 'completion', body: b, stream: b.stream ?? false, n, unknown: unknownFields(body, Object.keys(completionSchema.shape)) };
}

function openAiParams(b: ChatBody | CompletionBody, logprobs: number | undefined): SamplingParams {
  return given<SamplingParams>({
    maxTokens: b.max_completion_tokens ?? b.max_tokens, temperature: b.temperature, topP: b.top_p,
    topK: b.top_k == null ? undefined : Math.max(0, b.top_k),   // -1 (vLLM) and 0 both mean off
    minP: b.min_p, presencePenalty: b.presence_penalty, frequencyPenalty: b.frequency_penalty,
    repetitionPenalty: b.repetition_penalty, seed: b.seed, stopTokenIds: b.stop_token_ids, ignoreEos: b.ignore_eos,
    logprobs,
  });
}

function requireTokenizer(model: ServedModel, what: string, param: string): void {
  if (!model.engine.tokenizer) {
    throw validationError(`this model has no tokenizer.json, so ${what} cannot be tokenized; send the prompt as token ids to /v1/completions`, param);
  }
}

function chatMessages(b: ChatBody): ChatMessage[] {
  return b.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('\n'),
  }));
}

/** The prompts of a request, as token ids. Chat template refusals become 400s with its message. */
async function promptIds(req: OpenAiRequest, model: ServedModel): Promise<number[][]> {
  if (req.kind === 'chat') {
    requireTokenizer(model, 'messages', 'messages');
    const messages = chatMessages(req.body);
    checkPromptChars(model, messages.reduce((n, m) => n + m.content.length, 0), 'openai', 'messages');
    let ids: number[];
    try {
      ids = await model.engine.encodePrompt({ messages });
    } catch (e) {
      if (e instanceof ChatTemplateError) throw validationError(`the chat template refused the messages: ${e.message}`, 'messages');
      throw e;
    }
    checkPromptIds(model, ids, 'openai', 'messages');
    return [ids];
  }
  const p = req.body.prompt;
  const list: (string | number[])[] = typeof p === 'string' ? [p]
    : p.length && typeof p[0] === 'number' ? [p as number[]] : p as (string | number[])[];
  if (list.length * req.n > MAX_CHOICES) {
    throw validationError(`${list.length} prompts x n=${req.n} is over the limit of ${MAX_CHOICES} choices per request`, 'prompt');
  }
  return Promise.all(list.map(async (item) => {
    let ids: number[];
    if (typeof item === 'string') {
      requireTokenizer(model, 'a text prompt', 'prompt');
      checkPromptChars(model, item.length, 'openai');
      ids = await model.engine.encodePrompt({ prompt: item });
    } else {
      ids = item;
    }
    checkPromptIds(model, ids, 'openai', 'prompt');
    return ids;
  }));
}

export async function planOpenAi(req: OpenAiRequest, model: ServedModel): Promise<Plan> {
  const logprobs = req.kind === 'chat'
    ? (req.body.logprobs ? (req.body.top_logprobs ?? 0) : undefined)
    : (req.body.logprobs ?? undefined);
  const prompts = await promptIds(req, model);
  const grammar = await compileGrammar(model, openAiGrammar(req.body));   // after the cheaper checks
  const b = req.body;
  const stop = b.stop == null ? undefined : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return planRequests(model, prompts, req.n, openAiParams(b, logprobs), { stop, grammar }, 'openai');
}
