// One choice's result, accumulated from its engine chunks: the formatters of both APIs read it.
import type { FinishReason, GenerationChunk, Usage } from '../engine/engine';
import type { NativeTopLogprob } from '../engine/native';

const NO_TOP: NativeTopLogprob[] = [];

export class Choice {
  readonly tokenIds: number[] = [];
  /** The text each token added (stop-string hold-back moves text to a later token). */
  readonly tokenTexts: string[] = [];
  readonly logprobs: number[] = [];
  readonly top: NativeTopLogprob[][] = [];
  text = '';
  finishReason?: FinishReason;
  error?: string;
  usage?: Usage;
  promptLogits?: Float32Array;
  /** ms since the request started, when the first token arrived. */
  firstTokenMs?: number;
  private topForgotten = 0;

  constructor(readonly index: number, readonly seed: number | null, readonly promptIds: readonly number[]) {}

  get finished(): boolean {
    return this.finishReason !== undefined;
  }

  add(c: GenerationChunk, elapsedMs: number): void {
    if (c.tokenIds.length && this.firstTokenMs === undefined) this.firstTokenMs = elapsedMs;
    c.tokenIds.forEach((id, i) => {
      this.tokenIds.push(id);
      this.tokenTexts.push(i === c.tokenIds.length - 1 ? c.text : '');
      if (c.logprobs) this.logprobs.push(c.logprobs[i]);
      if (c.top) this.top.push(c.top[i]);
    });
    if (!c.tokenIds.length && c.text && this.tokenTexts.length) this.tokenTexts[this.tokenTexts.length - 1] += c.text;
    this.text += c.text;
    if (c.finishReason) {
      this.finishReason = c.finishReason;
      this.error = c.error;
      this.usage = c.usage;
      if (c.promptLogits) this.promptLogits = c.promptLogits;
    }
  }

  /** A stream formats each token's top logprobs once: after that they are dropped (the array
   *  keeps its length), so a long stream does not hold ~20 objects per token. */
  forgetTop(): void {
    for (; this.topForgotten < this.top.length; this.topForgotten++) this.top[this.topForgotten] = NO_TOP;
  }

  get promptTokens(): number {
    return this.usage?.promptTokens || this.promptIds.length;
  }

  get completionTokens(): number {
    return this.tokenIds.length;
  }
}
