// SageMaker's /invocations takes three bodies; the shape says which (as TGI's SageMaker route does).
import { validationError } from './errors';

export type BodyKind = 'tgi' | 'chat' | 'completion';

export function detectBody(body: unknown): BodyKind {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    if ('messages' in body) return 'chat';
    if ('inputs' in body) return 'tgi';
    if ('prompt' in body) return 'completion';
  }
  throw validationError('the body must be a JSON object with "inputs" (TGI), "messages" (OpenAI chat) or "prompt" (OpenAI completions)');
}
