// Request bodies checked against zod schemas; the first problem becomes an ApiError that names the
// field ("parameters.temperature: Too small: expected number to be >0, got -1"). Unknown fields
// are not errors (TGI and vLLM ignore them); unknownFields lists them for the request log.
import type { z } from 'zod';
import { ApiError } from './errors';

/** `messages[0].content`-style path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out;
}

function shortJson(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Parses body with schema or throws a validation ApiError naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = fieldPath(issue.path);
  const got = 'input' in issue && issue.code !== 'invalid_type' && issue.input !== undefined
    ? `, got ${shortJson(issue.input)}` : '';
  const message = field ? `${field}: ${issue.message}${got}` : `${what}: ${issue.message}`;
  const param = issue.path.length ? String(issue.path[0]) : undefined;
  throw new ApiError('validation', message, { param });
}

/** Keys of value (a plain object) that are not in known, prefixed for the log. */
export function unknownFields(value: unknown, known: readonly string[], prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  return Object.keys(value).filter((k) => !known.includes(k)).map((k) => prefix + k);
}
