// `gyre invoke`: one call to a SageMaker endpoint serving Gyre, through the real runtime SDK.
// Streaming responses arrive as PayloadParts whose boundaries are arbitrary (mid-line, even
// mid-character), so the bytes are decoded incrementally and split into lines before the
// server-sent events (TGI tokens or OpenAI chunks) are read.
import {
  InvokeEndpointCommand, InvokeEndpointWithResponseStreamCommand, SageMakerRuntimeClient, type SageMakerRuntimeClientConfig,
} from '@aws-sdk/client-sagemaker-runtime';
import { beforeAwsSdkClient } from './node_version';

export interface InvokeOptions {
  endpoint: string;
  text: string;
  region?: string;
  endpointUrl?: string;
  stream?: boolean;
  chat?: boolean;
  raw?: boolean;        // print the body as received
  maxTokens?: number;
  temperature?: number;
  seed?: number;
}

/** A TGI body, or with `chat` an OpenAI chat body (TEXT as the user message). */
export function requestBody(o: InvokeOptions): Record<string, unknown> {
  const stream = !!o.stream;
  if (o.chat) {
    return { messages: [{ role: 'user', content: o.text }], max_tokens: o.maxTokens, temperature: o.temperature, seed: o.seed, stream };
  }
  // TGI takes greedy as do_sample: false; its temperature must be > 0.
  const greedy = o.temperature === 0;
  const parameters = {
    max_new_tokens: o.maxTokens, temperature: greedy ? undefined : o.temperature, seed: o.seed,
    do_sample: o.temperature === undefined ? undefined : !greedy,
  };
  return { inputs: o.text, parameters, stream };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

export function clientConfig(o: Pick<InvokeOptions, 'region' | 'endpointUrl'>, env: NodeJS.ProcessEnv = process.env): SageMakerRuntimeClientConfig {
  const config: SageMakerRuntimeClientConfig = {};
  const region = o.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (region) config.region = region;
  if (o.endpointUrl) {
    config.endpoint = o.endpointUrl;
    config.region ??= 'us-east-1';  // a local endpoint ignores it, but the SDK signs with one
    // A local `gyre endpoint` checks no signature: with no credentials configured, sign with
    // placeholders instead of searching the instance metadata service.
    const local = LOOPBACK.has(new URL(o.endpointUrl).hostname);
    if (local && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE) {
      config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    }
  }
  return config;
}

/** Text of a whole (non-streamed) response: TGI [{generated_text}], OpenAI chat or completion. */
export function responseText(body: string): string {
  let v: any;
  try {
    v = JSON.parse(body);
  } catch {
    return body;
  }
  const first = Array.isArray(v) ? v[0] : v;
  if (typeof first?.generated_text === 'string') return first.generated_text;
  const choice = first?.choices?.[0];
  if (typeof choice?.message?.content === 'string') return choice.message.content;
  if (typeof choice?.text === 'string') return choice.text;
  return body;
}

/** The text one SSE `data:` payload carries; throws on an error event. */
export function eventText(data: string): string {
  if (data === '[DONE]') return '';
  const v = JSON.parse(data);
  if (v.error !== undefined) {
    const message = typeof v.error === 'string' ? v.error : v.error?.message ?? JSON.stringify(v.error);
    throw new Error(`the endpoint failed mid-stream: ${message}`);
  }
  if (v.token) return v.token.special ? '' : String(v.token.text ?? '');  // TGI
  const choice = v.choices?.[0];
  return String(choice?.delta?.content ?? choice?.text ?? '');            // OpenAI chat / completion
}

/** Turns PayloadPart bytes into text as soon as each SSE line is complete. */
export class StreamText {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';

  push(bytes: Uint8Array): string {
    this.pending += this.decoder.decode(bytes, { stream: true });
    const lines = this.pending.split('\n');
    this.pending = lines.pop()!;
    return lines.map((l) => this.line(l)).join('');
  }

  end(): string {
    const rest = this.pending + this.decoder.decode();
    this.pending = '';
    return this.line(rest);
  }

  private line(line: string): string {
    const l = line.replace(/\r$/, '');
    return l.startsWith('data:') ? eventText(l.slice(5).trim()) : '';
  }
}

/** A readable message for the runtime's errors: ModelError carries the container's own answer. */
export function describeError(e: unknown, endpoint: string): Error {
  const err = e as Error & { OriginalStatusCode?: number; OriginalMessage?: string; $metadata?: { httpStatusCode?: number } };
  if (err.name === 'ModelError') {
    return new Error(`endpoint ${endpoint}: the model container answered ${err.OriginalStatusCode ?? '?'}: ${err.OriginalMessage ?? err.message}`);
  }
  if (err.name === 'ModelStreamError' || err.name === 'InternalStreamFailure') return new Error(`endpoint ${endpoint}: ${err.name}: ${err.message}`);
  if (/Region is missing/.test(err.message)) return new Error('no AWS region: pass --region or set AWS_REGION');
  if (err.$metadata?.httpStatusCode) return new Error(`endpoint ${endpoint}: ${err.name} (HTTP ${err.$metadata.httpStatusCode}): ${err.message}`);
  return err;
}

/** Sends the request; writes the response text (streamed: each piece as it arrives). */
export async function invoke(o: InvokeOptions, write: (text: string) => void, given?: SageMakerRuntimeClient): Promise<void> {
  if (!given) beforeAwsSdkClient();
  const client = given ?? new SageMakerRuntimeClient(clientConfig(o));
  const body = JSON.stringify(requestBody(o));
  try {
    if (!o.stream) {
      const out = await client.send(new InvokeEndpointCommand({
        EndpointName: o.endpoint, ContentType: 'application/json', Accept: 'application/json', Body: body,
      }));
      const text = Buffer.from(out.Body ?? new Uint8Array()).toString('utf8');
      write(o.raw ? text : responseText(text));
      return;
    }
    const out = await client.send(new InvokeEndpointWithResponseStreamCommand({
      EndpointName: o.endpoint, ContentType: 'application/json', Accept: 'text/event-stream', Body: body,
    }));
    const parser = new StreamText();
    for await (const event of out.Body ?? []) {
      const bytes = event.PayloadPart?.Bytes;
      if (!bytes) continue;
      const text = o.raw ? Buffer.from(bytes).toString('utf8') : parser.push(bytes);
      if (text) write(text);
    }
    const rest = o.raw ? '' : parser.end();
    if (rest) write(rest);
  } catch (e) {
    throw describeError(e, o.endpoint);
  }
}
