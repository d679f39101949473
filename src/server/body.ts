// Request bodies: read up to the limit (SageMaker's 6 MB), decoded as strict UTF-8, refused when
// nested deeper than MAX_DEPTH (before JSON.parse, so no recursion ever sees them), then parsed.
// Any content type is accepted: curl and some SDKs send JSON without saying so. A body must arrive
// within a time limit (408), and the bytes of all bodies being received are capped together (503),
// so slow or stalled senders cannot hold the server's memory.
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../api/errors';

export const MAX_BODY_BYTES = 6 * 1024 * 1024;
export const MAX_DEPTH = 64;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The bytes of every body being received, against one cap. */
export class BodyBudget {
  private bytes = 0;

  constructor(readonly max: number) {}

  get inFlight(): number {
    return this.bytes;
  }

  tryTake(n: number): boolean {
    if (this.bytes + n > this.max) return false;
    this.bytes += n;
    return true;
  }

  give(n: number): void {
    this.bytes -= n;
  }
}

export interface BodyLimits {
  maxBytes?: number;
  timeoutMs?: number;
  budget?: BodyBudget;
}

function readRaw(req: IncomingMessage, opts: BodyLimits): Promise<Buffer> {
  const limit = opts.maxBytes ?? MAX_BODY_BYTES;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(declared, limit));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    const settle = (e?: ApiError) => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      opts.budget?.give(size);
      req.off('data', onData);
      if (e) {
        parts.length = 0;
        req.pause();   // the rest is not read: the error reply closes the connection
        reject(e);
      }
      return true;
    };
    const onData = (chunk: Buffer) => {
      if (done) return;
      if (size + chunk.length > limit) { settle(tooLarge(size + chunk.length, limit)); return; }
      if (opts.budget && !opts.budget.tryTake(chunk.length)) {
        settle(new ApiError('unavailable', `request bodies in flight would exceed ${opts.budget.max} bytes ` +
          '(GYRE_MAX_BODY_BYTES_IN_FLIGHT); retry shortly', { retryAfter: 1 }));
        return;
      }
      size += chunk.length;
      parts.push(chunk);
    };
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      settle(new ApiError('timeout', `the request body did not arrive within ${opts.timeoutMs! / 1000} s (GYRE_BODY_TIMEOUT)`));
    }, opts.timeoutMs);
    req.on('data', onData);
    req.on('end', () => { if (settle()) resolve(Buffer.concat(parts)); });
    req.on('error', (e) => settle(new ApiError('malformed', `could not read the body: ${e.message}`)));
    // The client went away mid-body: its bytes are given back at once.
    req.on('close', () => settle(new ApiError('malformed', 'the connection closed before the body ended')));
  });
}

function tooLarge(size: number, limit: number): ApiError {
  return new ApiError('too_large', `the body is larger than the limit of ${limit} bytes (${size}+ bytes)`);
}

/** The deepest nesting of [ and { outside strings; stops counting past max. */
export function jsonDepth(text: string, max = MAX_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;               // backslash: skip the escaped char
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > deepest) deepest = depth;
      if (deepest > max) return deepest;
    } else if (c === 93 || c === 125) depth--;
  }
  return deepest;
}

/** Reads and parses a JSON body. Throws ApiError (413, 408, 503, or 400 with what is wrong). */
export async function readJson(req: IncomingMessage, opts: BodyLimits = {}): Promise<unknown> {
  const raw = await readRaw(req, opts);
  let text: string;
  try {
    text = decoder.decode(raw);
  } catch {
    throw new ApiError('malformed', 'the body is not valid UTF-8');
  }
  if (text.trim() === '') throw new ApiError('malformed', 'the body is empty: expected a JSON object');
  if (jsonDepth(text) > MAX_DEPTH) throw new ApiError('malformed', `the body's JSON is nested deeper than ${MAX_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError('malformed', `the body is not valid JSON: ${(e as Error).message}`);
  }
}
