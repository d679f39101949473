// Request bodies: read up to the limit (SageMaker's 6 MB), decoded as strict UTF-8, refused when
// nested deeper than MAX_DEPTH (before JSON.parse, so no recursion ever sees them), then parsed.
// Any content type but a form's is accepted: some SDKs send JSON without saying so, or as text;
// a form body (urlencoded or multipart) says it is not JSON, and gets 415 as in TGI.
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../api/errors';

export const MAX_BODY_BYTES = 6 * 1024 * 1024;
export const MAX_DEPTH = 64;

const decoder = new TextDecoder('utf-8', { fatal: true });

function readRaw(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(declared, limit));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        parts.length = 0;
        reject(tooLarge(size, limit));
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => { if (!done) { done = true; resolve(Buffer.concat(parts)); } });
    req.on('error', (e) => { if (!done) { done = true; reject(new ApiError('malformed', `could not read the body: ${e.message}`)); } });
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

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/'];

/** Reads and parses a JSON body. Throws ApiError (413, 415, or 400 with what is wrong). */
export async function readJson(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (FORM_TYPES.some((t) => type.startsWith(t))) {
    req.resume();
    throw new ApiError('media_type', `the body is ${type}: send JSON with Content-Type: application/json`);
  }
  const raw = await readRaw(req, limit);
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
