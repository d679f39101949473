// The event-stream frames of InvokeEndpointWithResponseStream, as the SageMaker runtime sends
// them and @aws-sdk/client-sagemaker-runtime reads them: each frame is a PayloadPart event whose
// body is raw container bytes (boundaries arbitrary), or one closing exception frame.
import { EventStreamCodec } from '@smithy/eventstream-codec';
import type { MessageHeaders } from '@smithy/eventstream-codec';

export const EVENT_STREAM_CONTENT_TYPE = 'application/vnd.amazon.eventstream';

/** Exceptions the ResponseStream union carries after the HTTP 200 has gone out. */
export type StreamException =
  | { type: 'ModelStreamError'; message: string; errorCode: 'StreamBroken' | 'ModelInvocationTimeExceeded' }
  | { type: 'InternalStreamFailure'; message: string };

const codec = new EventStreamCodec(
  (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  (text: string) => new Uint8Array(Buffer.from(text, 'utf8')),
);

function str(value: string) {
  return { type: 'string' as const, value };
}

/** A PayloadPart event carrying `bytes` (its Bytes member is the event payload). */
export function payloadPartFrame(bytes: Uint8Array): Uint8Array {
  const headers: MessageHeaders = {
    ':event-type': str('PayloadPart'),
    ':message-type': str('event'),
    ':content-type': str('application/octet-stream'),
  };
  return codec.encode({ headers, body: bytes });
}

/** A modeled exception frame; the SDK throws it from the Body iterator as ModelStreamError etc. */
export function exceptionFrame(e: StreamException): Uint8Array {
  const body = e.type === 'ModelStreamError' ? { Message: e.message, ErrorCode: e.errorCode } : { Message: e.message };
  const headers: MessageHeaders = {
    ':exception-type': str(e.type),
    ':message-type': str('exception'),
    ':content-type': str('application/json'),
  };
  return codec.encode({ headers, body: new Uint8Array(Buffer.from(JSON.stringify(body), 'utf8')) });
}

/** Decodes a whole buffer of frames (for tests and debugging). */
export function decodeFrames(buf: Uint8Array): { headers: Record<string, string>; body: Buffer }[] {
  const decoder = new EventStreamCodec(
    (b: Uint8Array) => Buffer.from(b).toString('utf8'),
    (t: string) => new Uint8Array(Buffer.from(t, 'utf8')),
  );
  decoder.feed(buf);
  decoder.endOfStream();
  const out: { headers: Record<string, string>; body: Buffer }[] = [];
  for (const m of decoder.getAvailableMessages().getMessages()) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.headers)) headers[k] = String(v.value);
    out.push({ headers, body: Buffer.from(m.body) });
  }
  return out;
}
