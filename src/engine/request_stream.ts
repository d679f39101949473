// One request's stream of chunks: the engine's per-step outputs for it, detokenized and cut at
// stop strings, consumed as an async iterator (a pending-promise resolver; no polling).
import type { NativeFinishReason, NativeSeqOutput, NativeTopLogprob } from './native';
import type { IncrementalDecoder } from './tokenizer';

/** The engine's reasons, and 'stop_string': a stop string matched in the text (here, after
 *  detokenization). A request cut at its deadline (truncate) ends with 'length'. */
export type FinishReason = NativeFinishReason | 'stop_string';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;       // prompt tokens served from the prefix cache
}

export interface GenerationChunk {
  id: number;
  tokenIds: number[];         // new tokens
  text: string;               // new text ('' without a tokenizer)
  logprobs?: number[];
  top?: NativeTopLogprob[][];
  /** Set on the last chunk only, with usage. */
  finishReason?: FinishReason;
  error?: string;
  usage?: Usage;
  /** With 'stop_string': the string that matched. */
  stopString?: string;
  /** With 'eos' and 'stop_token': the token that ended the request. */
  stopTokenId?: number;
  promptLogits?: Float32Array; // [promptTokens * vocab], when requested
  promptLogprobs?: Float32Array; // [promptTokens - 1], when requested
}

export interface RequestStreamOptions {
  decoder?: IncrementalDecoder;
  stop?: readonly string[];
  /** Asks the engine to drop the request (consumer left, or a stop string matched). */
  abort: () => void;
}

export class RequestStream implements AsyncIterableIterator<GenerationChunk> {
  private readonly chunks: GenerationChunk[] = [];
  private waiter?: (r: IteratorResult<GenerationChunk>) => void;
  private ended = false;       // the last chunk has been queued, or the consumer left
  private held = '';           // text not yet emitted: it may begin a stop string
  private completionTokens = 0;
  private readonly stop: readonly string[];
  private readonly holdBack: number;

  constructor(readonly id: number, private readonly opts: RequestStreamOptions) {
    this.stop = (opts.stop ?? []).filter((s) => s.length > 0);
    this.holdBack = Math.max(0, ...this.stop.map((s) => s.length - 1));
  }

  get finished(): boolean {
    return this.ended;
  }

  /** One engine output for this request. */
  onOutput(out: NativeSeqOutput): void {
    if (this.ended) return;
    this.completionTokens += out.tokens.length;
    const decoder = this.opts.decoder;
    let text = decoder && out.tokens.length ? decoder.push(out.tokens) : '';
    if (decoder && out.finish) text += decoder.flush();
    const chunk: GenerationChunk = { id: this.id, tokenIds: out.tokens, text: '' };
    if (out.logprobs) chunk.logprobs = out.logprobs;
    if (out.top) chunk.top = out.top;

    this.held += text;
    const match = this.findStop();
    if (match) {
      chunk.text = this.held.slice(0, match.index);
      this.held = '';
      if (!out.finish) this.opts.abort();
      this.finish(chunk, out, 'stop_string', match.stop);
      return;
    }
    const emit = out.finish ? this.held.length : Math.max(0, this.held.length - this.holdBack);
    chunk.text = this.held.slice(0, emit);
    this.held = this.held.slice(emit);
    if (out.finish) this.finish(chunk, out, out.finish);
    else if (chunk.tokenIds.length || chunk.text) this.enqueue(chunk);
  }

  /** Ends the stream from outside the engine (the engine was closed). */
  fail(reason: FinishReason, error: string): void {
    if (this.ended) return;
    const chunk: GenerationChunk = { id: this.id, tokenIds: [], text: this.held, finishReason: reason, error };
    chunk.usage = { promptTokens: 0, completionTokens: this.completionTokens, cachedTokens: 0 };
    this.enqueue(chunk);
    this.ended = true;
  }

  /** Ends the request now, as if it had reached max_tokens (a deadline passed): aborts it in the
   *  engine and ends the stream with the text so far and finish reason 'length'. */
  truncate(): void {
    if (this.ended) return;
    this.opts.abort();
    const chunk: GenerationChunk = { id: this.id, tokenIds: [], text: this.held, finishReason: 'length' };
    chunk.usage = { promptTokens: 0, completionTokens: this.completionTokens, cachedTokens: 0 };
    this.held = '';
    this.enqueue(chunk);
    this.ended = true;
  }

  next(): Promise<IteratorResult<GenerationChunk>> {
    const chunk = this.chunks.shift();
    if (chunk) return Promise.resolve({ value: chunk, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => { this.waiter = resolve; });
  }

  /** The consumer left (break in for-await): abort the request in the engine. */
  return(): Promise<IteratorResult<GenerationChunk>> {
    if (!this.ended) {
      this.ended = true;
      this.opts.abort();
    }
    this.chunks.length = 0;
    this.wake({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<GenerationChunk> {
    return this;
  }

  private finish(chunk: GenerationChunk, out: NativeSeqOutput, reason: FinishReason, stop?: string): void {
    chunk.finishReason = reason;
    if (stop !== undefined) chunk.stopString = stop;
    else if (out.stopTokenId !== undefined) chunk.stopTokenId = out.stopTokenId;
    if (out.error) chunk.error = out.error;
    if (out.promptLogits) chunk.promptLogits = out.promptLogits;
    if (out.promptLogprobs) chunk.promptLogprobs = out.promptLogprobs;
    chunk.usage = {
      promptTokens: out.numPromptTokens,
      completionTokens: this.completionTokens,
      cachedTokens: out.numCachedTokens,
    };
    this.enqueue(chunk);
    this.ended = true;
  }

  private findStop(): { index: number; stop: string } | undefined {
    let best: { index: number; stop: string } | undefined;
    for (const stop of this.stop) {
      const index = this.held.indexOf(stop);
      if (index >= 0 && (!best || index < best.index)) best = { index, stop };
    }
    return best;
  }

  private enqueue(chunk: GenerationChunk): void {
    if (this.waiter) this.wake({ value: chunk, done: false });
    else this.chunks.push(chunk);
  }

  private wake(result: IteratorResult<GenerationChunk>): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(result);
  }
}
