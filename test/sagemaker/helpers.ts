// Shared by the endpoint tests: the real AWS SDK client pointed at a local endpoint.
import {
  InvokeEndpointCommand, InvokeEndpointWithResponseStreamCommand, SageMakerRuntimeClient,
} from '@aws-sdk/client-sagemaker-runtime';
import pino from 'pino';
import { startEndpoint, type RunningEndpoint } from '../../src/sagemaker/endpoint';

export const silent = pino({ level: 'silent' });

export function client(port: number, maxAttempts = 1): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    maxAttempts,
  });
}

export function endpoint(target: string, readyTimeoutMs = 30_000): Promise<RunningEndpoint> {
  return startEndpoint({ target, port: 0, readyTimeoutMs, logger: silent });
}

export async function invoke(c: SageMakerRuntimeClient, body: unknown, extra: Record<string, string> = {}) {
  const out = await c.send(new InvokeEndpointCommand({
    EndpointName: 'gyre-local', ContentType: 'application/json', Body: JSON.stringify(body), ...extra,
  }));
  return { ...out, text: Buffer.from(out.Body).toString('utf8') };
}

/** Runs a streaming invocation; returns every PayloadPart's bytes and the stream's content type. */
export async function invokeStream(c: SageMakerRuntimeClient, body: unknown, extra: Record<string, string> = {}) {
  const out = await c.send(new InvokeEndpointWithResponseStreamCommand({
    EndpointName: 'gyre-local', ContentType: 'application/json', Body: JSON.stringify(body), ...extra,
  }));
  const parts: Buffer[] = [];
  for await (const event of out.Body!) {
    if (event.PayloadPart?.Bytes) parts.push(Buffer.from(event.PayloadPart.Bytes));
  }
  return { contentType: out.ContentType, parts, text: Buffer.concat(parts as Uint8Array[]).toString('utf8') };
}

/** SSE `data:` payloads of a stream, split on newlines as clients do. */
export function sseData(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
}

/** Catches the SDK's error (or fails when there is none). */
export async function caught(p: Promise<unknown>): Promise<Record<string, unknown> & Error> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown> & Error;
  }
  throw new Error('expected the call to fail');
}
