// TGI's responses, field for field: {"generated_text", "details"} (an array of one on
// /invocations), and its token stream `data:{"index","token","generated_text","details"}` whose
// last event carries generated_text and details. Logprobs print as TGI's f32 values do.
import type { GenerationChunk } from '../engine/engine';
import type { NativeTopLogprob } from '../engine/native';
import type { Choice } from './choice';
import { type ApiError, errorBody } from './errors';
import { tgiFinishReason } from './finish_reason';
import { type ResponseFormat, logSoftmaxAt, sse } from './format';
import type { ServedModel } from './model';
import type { TgiRequest } from './tgi_request';

/** The shortest decimal that is the same float32 (TGI serializes f32). */
export function f32(x: number): number | null {
  if (!Number.isFinite(x)) return null;
  const f = Math.fround(x);
  for (let p = 1; p < 10; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

interface TgiToken { id: number; text: string; logprob: number | null; special: boolean }

export class TgiFormat implements ResponseFormat {
  private index = 0;
  private detailsSent = false;

  /** wrap: /invocations answers [{generated_text}] where /generate answers {generated_text}. */
  constructor(private readonly req: TgiRequest, private readonly model: ServedModel, private readonly wrap: boolean) {}

  body(choices: readonly Choice[]): unknown {
    const c = choices[0];
    const p = this.req.parameters;
    const out: Record<string, unknown> = { generated_text: this.generatedText(c) };
    if (p.details || p.decoder_input_details) {
      const details: Record<string, unknown> = {
        finish_reason: this.finishReason(c),
        generated_tokens: c.completionTokens,
        seed: c.seed,
        prefill: p.decoder_input_details ? this.prefill(c) : [],
        // Stop strings hold text back while it might begin a match, which moves it to later
        // tokens: then each token shows its own text, as TGI does.
        tokens: c.tokenIds.map((id, i) => this.token(id, p.stop?.length ? this.model.tokens.text(id) : c.tokenTexts[i], c.logprobs[i])),
      };
      if (p.top_n_tokens) details.top_tokens = c.top.map((top) => this.topTokens(top));
      out.details = details;
    }
    return this.wrap ? [out] : out;
  }

  start(): string {
    return '';
  }

  chunk(c: Choice, chunk: GenerationChunk): string {
    let out = '';
    const first = c.tokenIds.length - chunk.tokenIds.length;
    chunk.tokenIds.forEach((id, k) => {
      const i = first + k;
      const last = chunk.finishReason !== undefined && k === chunk.tokenIds.length - 1;
      const event: Record<string, unknown> = { index: ++this.index, token: this.token(id, c.tokenTexts[i], c.logprobs[i]) };
      if (this.req.parameters.top_n_tokens && c.top[i]) event.top_tokens = this.topTokens(c.top[i]);
      event.generated_text = last ? this.generatedText(c) : null;
      event.details = last ? this.streamDetails(c) : null;
      if (last) this.detailsSent = true;
      out += sse(event, false);
    });
    return out;
  }

  end(choices: readonly Choice[]): string {
    // The last chunk normally carries the last token and with it the details. A last chunk
    // without a token (rare) still owes the client generated_text and details.
    const c = choices[0];
    if (this.detailsSent) return '';
    const event = {
      index: ++this.index,
      token: { id: 0, text: '', logprob: null, special: true },
      generated_text: this.generatedText(c),
      details: this.streamDetails(c),
    };
    return sse(event, false);
  }

  error(e: ApiError): string {
    return sse(errorBody(e, 'tgi'), false);
  }

  private generatedText(c: Choice): string {
    return (this.req.parameters.return_full_text ? this.req.inputs : '') + c.text;
  }

  private streamDetails(c: Choice): unknown {
    return { finish_reason: this.finishReason(c), generated_tokens: c.completionTokens, seed: c.seed, input_length: c.promptTokens };
  }

  private finishReason(c: Choice): string {
    return tgiFinishReason(c.finishReason ?? 'length');
  }

  private token(id: number, text: string | undefined, logprob: number | undefined): TgiToken {
    return { id, text: text ?? '', logprob: logprob === undefined ? null : f32(logprob), special: this.model.tokens.isSpecial(id) };
  }

  private topTokens(top: NativeTopLogprob[]): TgiToken[] {
    return top.map((t) => ({ id: t.token, text: this.model.tokens.text(t.token), logprob: f32(t.logprob), special: this.model.tokens.isSpecial(t.token) }));
  }

  /** The prompt tokens with the logprob the model gave each (none for the first). */
  private prefill(c: Choice): { id: number; text: string; logprob: number | null }[] {
    const vocab = this.model.engine.config.vocabSize;
    const logits = c.promptLogits;
    return c.promptIds.map((id, i) => ({
      id,
      text: this.model.tokens.text(id),
      logprob: i > 0 && logits && logits.length >= i * vocab ? f32(logSoftmaxAt(logits, i - 1, vocab, id)) : null,
    }));
  }
}
