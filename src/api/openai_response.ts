// OpenAI's responses: chat.completion / chat.completion.chunk and text_completion objects, the
// stream ending with `data: [DONE]`. Token strings in logprobs are each token's own text.
import { randomBytes } from 'node:crypto';
import type { GenerationChunk } from '../engine/engine';
import type { NativeTopLogprob } from '../engine/native';
import type { Choice } from './choice';
import { type ApiError, errorBody } from './errors';
import { openAiFinishReason } from './finish_reason';
import { type ResponseFormat, sse } from './format';
import type { ServedModel } from './model';
import type { OpenAiRequest } from './openai_request';

export class OpenAiFormat implements ResponseFormat {
  private readonly id: string;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly modelName: string;
  private readonly object: string;
  private readonly includeUsage: boolean;
  /** Per choice: the text offset of token `from` (completions logprobs in a stream). */
  private readonly textOffsets = new Map<number, { from: number; offset: number }>();

  constructor(private readonly req: OpenAiRequest, private readonly model: ServedModel, readonly fingerprint: string) {
    const chat = req.kind === 'chat';
    this.id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    this.modelName = req.body.model ?? model.name;
    this.object = chat ? (req.stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    this.includeUsage = req.body.stream_options?.include_usage ?? false;
  }

  body(choices: readonly Choice[]): unknown {
    return this.envelope(choices.map((c) => this.req.kind === 'chat'
      ? { index: c.index, message: { role: 'assistant', content: c.text }, logprobs: this.chatLogprobs(c, 0), finish_reason: this.finish(c) }
      : { index: c.index, text: this.echo(c) + c.text, logprobs: this.completionLogprobs(c, 0), finish_reason: this.finish(c) }),
    this.usage(choices));
  }

  start(): string {
    if (this.req.kind !== 'chat') return '';
    let out = '';
    for (let i = 0; i < this.req.n; i++) {
      out += this.event([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    }
    return out;
  }

  chunk(c: Choice, chunk: GenerationChunk): string {
    const from = c.tokenIds.length - chunk.tokenIds.length;
    const wantLogprobs = this.req.kind === 'chat' ? !!this.req.body.logprobs : this.req.body.logprobs != null;
    let out = '';
    if (chunk.text || (wantLogprobs && chunk.tokenIds.length) || (this.req.kind === 'completion' && this.req.body.echo && from === 0)) {
      out += this.event([this.req.kind === 'chat'
        ? { index: c.index, delta: { content: chunk.text }, logprobs: this.chatLogprobs(c, from), finish_reason: null }
        : { index: c.index, text: (from === 0 ? this.echo(c) : '') + chunk.text, logprobs: this.completionLogprobs(c, from), finish_reason: null }]);
    }
    if (chunk.finishReason) {
      out += this.event([this.req.kind === 'chat'
        ? { index: c.index, delta: {}, logprobs: null, finish_reason: this.finish(c) }
        : { index: c.index, text: '', logprobs: null, finish_reason: this.finish(c) }]);
    }
    return out;
  }

  end(choices: readonly Choice[]): string {
    const usage = this.includeUsage ? sse({ ...this.head(), choices: [], usage: this.usage(choices) }, true) : '';
    return `${usage}data: [DONE]\n\n`;
  }

  error(e: ApiError): string {
    return sse(errorBody(e, 'openai'), true) + 'data: [DONE]\n\n';
  }

  private head(): Record<string, unknown> {
    return { id: this.id, object: this.object, created: this.created, model: this.modelName, system_fingerprint: this.fingerprint };
  }

  private envelope(choices: unknown[], usage: unknown): unknown {
    return { ...this.head(), choices, usage };
  }

  private event(choices: unknown[]): string {
    const e: Record<string, unknown> = { ...this.head(), choices };
    if (this.includeUsage) e.usage = null;
    return sse(e, true);
  }

  private finish(c: Choice): string | null {
    return c.finishReason ? openAiFinishReason(c.finishReason) : null;
  }

  private echo(c: Choice): string {
    if (this.req.kind !== 'completion' || !this.req.body.echo) return '';
    return this.model.engine.tokenizer?.decode(c.promptIds as number[], { skipSpecial: true }) ?? '';
  }

  /** Prompt tokens counted once per distinct prompt (n choices share one). */
  private usage(choices: readonly Choice[]): unknown {
    let prompt = 0;
    let cached = 0;
    for (let i = 0; i < choices.length; i += this.req.n) {
      prompt += choices[i].promptTokens;
      cached += choices[i].usage?.cachedTokens ?? 0;
    }
    const completion = choices.reduce((n, c) => n + c.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
  }

  private entry(id: number, logprob: number): { token: string; logprob: number; bytes: number[] } {
    const token = this.model.tokens.text(id);
    return { token, logprob: Number.isFinite(logprob) ? logprob : -9999, bytes: this.model.tokens.bytes(id) };
  }

  private chatLogprobs(c: Choice, from: number): unknown {
    if (this.req.kind !== 'chat' || !this.req.body.logprobs) return null;
    const content = c.tokenIds.slice(from).map((id, k) => ({
      ...this.entry(id, c.logprobs[from + k]),
      top_logprobs: (c.top[from + k] ?? []).map((t: NativeTopLogprob) => this.entry(t.token, t.logprob)),
    }));
    return { content };
  }

  private completionLogprobs(c: Choice, from: number): unknown {
    if (this.req.kind !== 'completion' || this.req.body.logprobs == null) return null;
    const ids = c.tokenIds.slice(from);
    const tokens = ids.map((id) => this.model.tokens.text(id));
    // A stream asks for each choice's tokens in order: carry the offset on (summing from 0 per
    // chunk made a long stream quadratic).
    const carried = this.textOffsets.get(c.index);
    let offset = carried?.from === from ? carried.offset
      : c.tokenIds.slice(0, from).reduce((n, id) => n + this.model.tokens.text(id).length, 0);
    const text_offset = tokens.map((t) => { const o = offset; offset += t.length; return o; });
    this.textOffsets.set(c.index, { from: from + ids.length, offset });
    const wantTop = this.req.body.logprobs > 0;
    return {
      tokens,
      token_logprobs: ids.map((_, k) => c.logprobs[from + k] ?? null),
      top_logprobs: ids.map((_, k) => (wantTop ? this.topTexts(c.top[from + k]) : null)),
      text_offset,
    };
  }

  /** {text: logprob} of the top tokens. A null-prototype object is a dictionary from the start:
   *  Object.fromEntries over ever-new token texts grew V8's hidden-class tree (~3x slower). */
  private topTexts(top: readonly NativeTopLogprob[] | undefined): Record<string, number> {
    const out = Object.create(null) as Record<string, number>;
    for (const t of top ?? []) out[this.model.tokens.text(t.token)] = t.logprob;
    return out;
  }
}
