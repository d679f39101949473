// Runs a planned request in the engine and answers it: one JSON body, or a stream of events
// written as each engine step delivers tokens (chunked transfer encoding). A client that goes away
// aborts its sequences in the engine, which frees their KV blocks.
import type { Response } from 'express';
import { Choice } from '../api/choice';
import { ApiError, validationError } from '../api/errors';
import type { ResponseFormat } from '../api/format';
import type { ServedModel } from '../api/model';
import type { Plan } from '../api/sampling';
import type { GenerationChunk } from '../engine/engine';
import type { Admission } from './admission';

/** What the request log line and the metrics need to know about a generation. */
export interface GenerationRecord {
  api: string;
  stream: boolean;
  choices: number;
  unknownFields?: string[];
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  finishReason?: string;
  seed?: number | null;
  ttftMs?: number;
  tpotMs?: number;
  clientGone?: boolean;
}

/** The first failure among finished choices, as the error the client gets. */
function failure(choices: readonly Choice[]): ApiError | undefined {
  const failed = choices.find((c) => c.finishReason === 'error' || c.finishReason === 'abort');
  if (!failed) return undefined;
  if (failed.finishReason === 'error') return new ApiError('generation', `Request failed during generation: ${failed.error ?? 'engine error'}`);
  return new ApiError('unavailable', `the request was aborted: ${failed.error ?? 'the server is shutting down'}`);
}

/** A stream whose unsent bytes pass maxBufferBytes (a client not reading) is aborted. */
export interface SlowClientPolicy {
  maxBufferBytes: number;
  onAbort(bufferedBytes: number): void;
}

export async function runPlan(model: ServedModel, admission: Admission, res: Response, plan: Plan,
                              format: ResponseFormat, stream: boolean, record: GenerationRecord,
                              startMs: number, slow: SlowClientPolicy): Promise<void> {
  const release = admission.admit(plan.requests.length);
  const streams: AsyncIterableIterator<GenerationChunk>[] = [];
  try {
    for (const r of plan.requests) streams.push(model.engine.generate(r));
  } catch (e) {
    // The engine refused a request it cannot run (e.g. more KV blocks than the pool holds).
    streams.forEach((s) => void s.return?.());
    release();
    throw validationError((e as Error).message);
  }
  const choices = plan.requests.map((_, i) => new Choice(i, plan.seeds[i], plan.promptIds[i]));
  let clientGone = false;
  const onClose = () => {
    if (res.writableFinished) return;
    clientGone = true;
    streams.forEach((s) => void s.return?.());
  };
  // Writing stops once the client has gone; an 'error' on the response counts as gone.
  res.on('close', onClose);
  res.on('error', onClose);
  const write = (bytes: string) => {
    if (!bytes || clientGone || res.destroyed) return;
    res.write(bytes);
    // Bytes Node holds for this client (response and socket buffers; the kernel's are fixed, see
    // server.ts): past the cap the client has fallen behind, and buffering stops here.
    const buffered = res.writableLength;
    if (buffered > slow.maxBufferBytes) {
      clientGone = true;
      streams.forEach((s) => void s.return?.());
      slow.onAbort(buffered);
      res.destroy();
    }
  };
  try {
    if (stream) {
      res.status(200);
      res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('X-Accel-Buffering', 'no');
      res.flushHeaders();
      res.socket?.setNoDelay(true);
      write(format.start());
    }
    let failedSent = false;
    await Promise.all(streams.map(async (s, i) => {
      for await (const chunk of s) {
        const c = choices[i];
        c.add(chunk, performance.now() - startMs);
        if (!stream || clientGone || failedSent) continue;
        const f = chunk.finishReason ? failure([c]) : undefined;
        if (f) {
          failedSent = true;
          write(format.error(f));
          streams.forEach((other) => void other.return?.());
        } else {
          write(format.chunk(c, chunk));
          c.forgetTop();
        }
      }
    }));
    summarize(choices, record, startMs);
    record.clientGone = clientGone;
    if (clientGone) return;
    if (stream) {
      if (!failedSent) write(format.end(choices));
      res.end();
      return;
    }
    const f = failure(choices);
    if (f) throw f;
    res.status(200).json(format.body(choices));
  } finally {
    res.off('close', onClose);
    release();
  }
}

function summarize(choices: readonly Choice[], record: GenerationRecord, startMs: number): void {
  const first = choices[0];
  let prompt = 0;
  let cached = 0;
  const seen = new Set<readonly number[]>();
  for (const c of choices) {
    if (seen.has(c.promptIds)) continue;
    seen.add(c.promptIds);
    prompt += c.promptTokens;
    cached += c.usage?.cachedTokens ?? 0;
  }
  record.promptTokens = prompt;
  record.cachedTokens = cached;
  record.completionTokens = choices.reduce((n, c) => n + c.completionTokens, 0);
  record.finishReason = first.finishReason ?? 'abort';
  record.seed = first.seed;
  const ttft = Math.min(...choices.map((c) => c.firstTokenMs ?? Infinity));
  if (Number.isFinite(ttft)) {
    record.ttftMs = ttft;
    const e2e = performance.now() - startMs;
    if (first.completionTokens > 1) record.tpotMs = (e2e - ttft) / (first.completionTokens - 1);
  }
}
