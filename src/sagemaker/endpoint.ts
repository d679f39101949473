// A local SageMaker runtime endpoint: the two InvokeEndpoint* routes of the runtime API in front
// of one container, answering on the wire as the runtime does, so the real AWS SDK (pointed here
// with `endpoint:`) behaves as it does against AWS. SageMaker's Python "local mode", for Node.
//
//   SDK --POST /endpoints/{name}/invocations-------------> POST /invocations  (body verbatim)
//       <-- body + Content-Type, or 424 ModelError <------ 2xx / non-2xx
//   SDK --POST /endpoints/{name}/invocations-response-stream --> POST /invocations
//       <-- 200 event stream of PayloadPart frames <------ chunked bytes, as they arrive
//
// Before the container's /ping is 200, an invocation waits for it (up to readyTimeoutMs), then
// gets 429 ModelNotReadyException. AWS instead refuses invocations until the endpoint is
// InService; waiting suits a container started next to the endpoint.
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Logger } from 'pino';
import { Target } from './target';
import { EVENT_STREAM_CONTENT_TYPE, exceptionFrame, payloadPartFrame } from './event_stream';
import { internalFailure, modelError, modelNotReady, modelUnreachable, validationError, type RuntimeError } from './runtime_errors';

export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;  // SageMaker's request/response limit
const VARIANT = 'AllTraffic';

export interface EndpointOptions {
  target: string;
  readyTimeoutMs?: number;  // how long an invocation waits for /ping 200 (60 s)
  logger: Logger;
}

type Req = express.Request<{ name: string }>;

function sendError(res: express.Response, e: RuntimeError): void {
  res.status(e.status).set('x-amzn-errortype', e.type).type('application/json').send(JSON.stringify(e.body));
}

/** Headers the container receives: the payload's type, what the caller accepts, X-Amzn-SageMaker-*. */
function forwardedHeaders(req: Req, streaming: boolean): http.OutgoingHttpHeaders {
  const h: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && k.startsWith('x-amzn-sagemaker-') && k !== 'x-amzn-sagemaker-accept') h[k] = v;
  }
  if (req.headers['content-type']) h['content-type'] = req.headers['content-type'];
  // InvokeEndpoint sends Accept; the streaming call sends X-Amzn-SageMaker-Accept.
  const accept = streaming ? req.headers['x-amzn-sagemaker-accept'] : req.headers.accept;
  if (accept) h.accept = accept;
  return h;
}

function readAll(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    res.on('data', (c: Uint8Array) => chunks.push(c));
    res.on('error', reject);
    res.on('close', () => (res.complete ? resolve(Buffer.concat(chunks)) : reject(new Error('the response body broke off'))));
  });
}

export function createEndpointApp(opts: EndpointOptions): { app: express.Express; target: Target } {
  const target = new Target(opts.target);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const log = opts.logger;
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => { res.set('x-amzn-RequestId', randomUUID()); next(); });
  const body = express.raw({ type: () => true, limit: MAX_PAYLOAD_BYTES });

  /** Waits for readiness, then sends the body to the container; answers errors itself. */
  async function forward(req: Req, res: express.Response, streaming: boolean) {
    if (!(await target.whenReady(readyTimeoutMs))) {
      const s = target.status;
      sendError(res, modelNotReady(`Container at ${target.url.origin} is not ready: ${s.ready ? 'ready' : s.reason}`));
      return undefined;
    }
    if (req.socket.destroyed) return undefined;  // the caller gave up while it waited
    const payload = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const call = target.invoke(payload, forwardedHeaders(req, streaming));
    res.on('close', () => { if (!res.writableFinished) call.request.destroy(); });
    try {
      const upstream = await call.response;
      if (upstream.statusCode !== undefined && upstream.statusCode >= 200 && upstream.statusCode < 300) return upstream;
      const text = (await readAll(upstream)).toString('utf8');
      sendError(res, modelError(req.params.name, upstream.statusCode ?? 0, text));
    } catch (e) {
      sendError(res, modelUnreachable(req.params.name, (e as Error).message));
    }
    return undefined;
  }

  function logLine(req: Req, res: express.Response, started: number, extra: Record<string, unknown> = {}): void {
    log.info({
      endpoint: req.params.name, route: req.path.endsWith('stream') ? 'InvokeEndpointWithResponseStream' : 'InvokeEndpoint',
      status: res.statusCode, errorType: res.getHeader('x-amzn-errortype'), latencyMs: Date.now() - started,
      inferenceId: req.headers['x-amzn-sagemaker-inference-id'], ...extra,
    }, 'invocation');
  }

  app.post('/endpoints/:name/invocations', body, async (req: Req, res) => {
    const started = Date.now();
    const upstream = await forward(req, res, false);
    if (upstream) {
      try {
        const out = await readAll(upstream);
        if (out.length > MAX_PAYLOAD_BYTES) {
          sendError(res, modelUnreachable(req.params.name, `the response is ${out.length} bytes, over the 6 MB limit`));
        } else {
          res.status(200).set('x-Amzn-Invoked-Production-Variant', VARIANT);
          const attrs = upstream.headers['x-amzn-sagemaker-custom-attributes'];
          if (attrs) res.set('X-Amzn-SageMaker-Custom-Attributes', attrs);
          // setHeader, not res.set: the container's content type goes back byte for byte.
          res.setHeader('Content-Type', upstream.headers['content-type'] ?? 'application/octet-stream');
          res.end(out);
        }
      } catch (e) {
        sendError(res, modelUnreachable(req.params.name, (e as Error).message));
      }
    }
    logLine(req, res, started);
  });

  app.post('/endpoints/:name/invocations-response-stream', body, async (req: Req, res) => {
    const started = Date.now();
    const upstream = await forward(req, res, true);
    if (!upstream) return logLine(req, res, started);
    res.status(200).set({
      'Content-Type': EVENT_STREAM_CONTENT_TYPE,
      'X-Amzn-SageMaker-Content-Type': upstream.headers['content-type'] ?? 'application/octet-stream',
      'x-Amzn-Invoked-Production-Variant': VARIANT,
    });
    const attrs = upstream.headers['x-amzn-sagemaker-custom-attributes'];
    if (attrs) res.set('X-Amzn-SageMaker-Custom-Attributes', attrs);
    res.flushHeaders();
    let parts = 0;
    upstream.on('data', (chunk: Uint8Array) => {
      if (chunk.length === 0) return;
      parts++;
      // Backpressure: a slow client slows the container's stream instead of buffering here.
      if (!res.write(payloadPartFrame(chunk))) {
        upstream.pause();
        res.once('drain', () => upstream.resume());
      }
    });
    upstream.on('error', () => undefined);  // 'close' below decides
    upstream.on('close', () => {
      if (res.writableEnded || res.destroyed) return logLine(req, res, started, { payloadParts: parts, clientGone: true });
      if (!upstream.complete) {
        res.write(exceptionFrame({
          type: 'ModelStreamError', errorCode: 'StreamBroken',
          message: 'The connection to container primary was closed before its response stream completed.',
        }));
      }
      res.end();
      logLine(req, res, started, { payloadParts: parts, complete: upstream.complete });
    });
  });

  app.use((req, res) => {
    res.status(404).set('x-amzn-errortype', 'UnknownOperationException').type('application/json')
      .send(JSON.stringify({ message: `No SageMaker runtime operation at ${req.method} ${req.path}` }));
  });
  app.use((err: Error & { type?: string; status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (res.headersSent) return void res.end();
    if (err.type === 'entity.too.large') sendError(res, validationError(`Request body exceeds the ${MAX_PAYLOAD_BYTES}-byte (6 MB) limit`));
    else if (err.status && err.status < 500) sendError(res, validationError(err.message));
    else { log.error({ err }, 'endpoint failure'); sendError(res, internalFailure(err.message)); }
  });
  return { app, target };
}

export interface RunningEndpoint {
  server: http.Server;
  target: Target;
  port: number;
  close(): Promise<void>;
}

/** Starts listening at once and polls the target's /ping in the background. */
export async function startEndpoint(opts: EndpointOptions & { port: number; host?: string }): Promise<RunningEndpoint> {
  const { app, target } = createEndpointApp(opts);
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  target.start();
  const port = (server.address() as { port: number }).port;
  return {
    server, target, port,
    close: () => new Promise<void>((resolve) => {
      target.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
