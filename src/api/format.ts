// The contract between the request runner (src/server/generation.ts) and the two APIs' response
// writers: a whole JSON body, or a stream of server-sent events.
import type { GenerationChunk } from '../engine/engine';
import type { Choice } from './choice';
import type { ApiError } from './errors';

export interface ResponseFormat {
  /** The non-streaming body, once every choice has finished. */
  body(choices: readonly Choice[]): unknown;
  /** Streaming: bytes to send before any token ('' for none). */
  start(): string;
  /** Streaming: the events for one chunk, after choice.add(chunk). */
  chunk(choice: Choice, chunk: GenerationChunk): string;
  /** Streaming: the bytes that end the stream, once every choice has finished. */
  end(choices: readonly Choice[]): string;
  /** Streaming: an error after the stream started. */
  error(e: ApiError): string;
}

/** One SSE event. TGI writes `data:{...}` (no space), as axum does; OpenAI `data: {...}`. */
export function sse(data: unknown, space: boolean): string {
  return `data:${space ? ' ' : ''}${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

/** log(softmax(row))[id] over one row of logits. */
export function logSoftmaxAt(logits: Float32Array, row: number, vocab: number, id: number): number {
  const base = row * vocab;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[base + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[base + i] - max);
  return logits[base + id] - max - Math.log(sum);
}
