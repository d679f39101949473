// API errors and their two wire shapes. A handler throws ApiError with a kind; the route's style
// (TGI or OpenAI) decides the status and the body:
//   TGI:    {"error": "...", "error_type": "..."}                     (422 for invalid input)
//   OpenAI: {"error": {"message", "type", "param", "code"}}           (400 for invalid input)

export type ErrorKind =
  | 'malformed'     // not JSON, not UTF-8, nested too deep
  | 'validation'    // a field of the wrong type or range, a prompt too long, a template refusal
  | 'not_found'
  | 'too_large'     // body over the size limit
  | 'timeout'       // the body did not arrive in time
  | 'overloaded'    // waiting queue full
  | 'unavailable'   // loading, failed, draining
  | 'generation'    // the engine failed mid-request
  | 'internal';

export type ApiStyle = 'tgi' | 'openai';

export interface ApiErrorOptions {
  param?: string;
  retryAfter?: number;   // seconds, for 429 / 503
}

export class ApiError extends Error {
  readonly param: string | null;
  readonly retryAfter?: number;

  constructor(readonly kind: ErrorKind, message: string, opts: ApiErrorOptions = {}) {
    super(message);
    this.name = 'ApiError';
    this.param = opts.param ?? null;
    this.retryAfter = opts.retryAfter;
  }
}

export const validationError = (message: string, param?: string): ApiError =>
  new ApiError('validation', message, { param });

const TGI: Record<ErrorKind, [number, string]> = {
  malformed: [400, 'validation'],
  validation: [422, 'validation'],
  not_found: [404, 'not_found'],
  too_large: [413, 'validation'],
  timeout: [408, 'timeout'],
  overloaded: [429, 'overloaded'],
  unavailable: [503, 'unhealthy'],
  generation: [424, 'generation'],
  internal: [500, 'internal'],
};

const OPENAI: Record<ErrorKind, [number, string, string | null]> = {
  malformed: [400, 'invalid_request_error', 'invalid_json'],
  validation: [400, 'invalid_request_error', null],
  not_found: [404, 'invalid_request_error', 'not_found'],
  too_large: [413, 'invalid_request_error', 'request_too_large'],
  timeout: [408, 'timeout_error', 'request_timeout'],
  overloaded: [429, 'rate_limit_error', 'rate_limit_exceeded'],
  unavailable: [503, 'service_unavailable_error', 'service_unavailable'],
  generation: [500, 'server_error', 'generation_failed'],
  internal: [500, 'server_error', null],
};

export interface WireError {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** Any thrown value as an ApiError (unknown errors are internal; their message is kept). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError('internal', e instanceof Error ? e.message : String(e));
}

export function errorStatus(e: ApiError, style: ApiStyle): number {
  return style === 'tgi' ? TGI[e.kind][0] : OPENAI[e.kind][0];
}

export function errorBody(e: ApiError, style: ApiStyle): unknown {
  if (style === 'tgi') return { error: e.message, error_type: TGI[e.kind][1] };
  const [, type, code] = OPENAI[e.kind];
  return { error: { message: e.message, type, param: e.param, code } };
}

export function toWire(e: ApiError, style: ApiStyle): WireError {
  const headers: Record<string, string> = {};
  if (e.retryAfter !== undefined) headers['Retry-After'] = String(e.retryAfter);
  return { status: errorStatus(e, style), body: errorBody(e, style), headers };
}
