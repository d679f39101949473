// The express app: one JSON log line and one metrics count per request, the routes, and the error
// handler that turns anything thrown into the route's error shape. Nothing a client sends can
// crash the process: every handler's rejection ends here.
import express, { type NextFunction, type Request, type Response } from 'express';
import { ApiError, type ApiStyle, asApiError, toWire } from '../api/errors';
import type { ServerContext } from './context';
import type { GenerationRecord } from './generation';
import { addGenerateRoutes } from './routes_generate';
import { addStatusRoutes } from './routes_status';

const KNOWN_ROUTES = new Set([
  '/', '/ping', '/invocations', '/generate', '/generate_stream', '/health', '/info',
  '/v1/chat/completions', '/v1/completions', '/v1/models', '/metrics',
]);
const QUIET_ROUTES = new Set(['/ping', '/metrics', '/health']);

/** X-Amzn-SageMaker-* request headers (custom attributes, inference id, ...), for the log. */
function sagemakerHeaders(req: Request): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(req.headers)) {
    if (!k.startsWith('x-amzn-sagemaker-') || v === undefined) continue;
    const value = Array.isArray(v) ? v.join(',') : v;
    (out ??= {})[k.slice('x-amzn-sagemaker-'.length)] = value.length > 1024 ? `${value.slice(0, 1024)}...` : value;
  }
  return out;
}

function requestLog(ctx: ServerContext) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.locals.startMs = performance.now();
    const route = KNOWN_ROUTES.has(req.path) ? req.path : 'other';
    res.on('close', () => {
      const pending = res.locals.pending as Promise<void> | undefined;
      if (pending) void pending.then(finish);
      else finish();
    });
    const finish = () => {
      const e2eMs = performance.now() - (res.locals.startMs as number);
      const gen = res.locals.generation as GenerationRecord | undefined;
      // A client that left before the response finished: nginx's 499.
      const status = gen?.clientGone || !res.writableFinished ? 499 : res.statusCode;
      ctx.metrics.countRequest(route, status);
      if (gen) {
        const figures = { route, status, e2eS: e2eMs / 1000, ttftS: gen.ttftMs === undefined ? undefined : gen.ttftMs / 1000, tpotS: gen.tpotMs === undefined ? undefined : gen.tpotMs / 1000 };
        if (status < 400) ctx.metrics.observe(figures);
        ctx.emf.record(figures);
      } else if (route !== '/ping' && route !== '/metrics') {
        ctx.emf.record({ route, status, e2eS: e2eMs / 1000 });
      }
      if (QUIET_ROUTES.has(route) && status < 400) return;
      const line: Record<string, unknown> = {
        method: req.method, route: req.path.slice(0, 200), status, latency_ms: Math.round(e2eMs * 10) / 10,
      };
      const sm = sagemakerHeaders(req);
      if (sm) line.sagemaker = sm;
      if (gen) {
        Object.assign(line, {
          api: gen.api, stream: gen.stream, choices: gen.choices, prompt_tokens: gen.promptTokens,
          completion_tokens: gen.completionTokens, cached_tokens: gen.cachedTokens, finish_reason: gen.finishReason,
          ttft_ms: gen.ttftMs === undefined ? undefined : Math.round(gen.ttftMs * 10) / 10,
          tpot_ms: gen.tpotMs === undefined ? undefined : Math.round(gen.tpotMs * 100) / 100,
          seed: gen.seed ?? undefined,
        });
        if (gen.unknownFields?.length) line.ignored_fields = gen.unknownFields.slice(0, 20);
      }
      if (res.locals.error) line.error = res.locals.error;
      ctx.logger.info(line, 'request');
    };
    next();
  };
}

function errorHandler(ctx: ServerContext) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const e = asApiError(err);
    if (e.kind === 'internal') ctx.logger.error({ err: (err as Error)?.stack ?? String(err), route: req.path }, 'internal error');
    res.locals.error = e.message.slice(0, 500);
    if (res.headersSent) {
      // A stream already started: the runner has written what it could; just end it.
      if (!res.writableEnded) res.end();
      return;
    }
    const style = (res.locals.style as ApiStyle | undefined) ?? (req.path.startsWith('/v1/') ? 'openai' : 'tgi');
    const wire = toWire(e, style);
    for (const [k, v] of Object.entries(wire.headers)) res.setHeader(k, v);
    // The rest of the body is not read: close the connection after answering.
    if (!req.complete) res.setHeader('Connection', 'close');
    res.status(wire.status).json(wire.body);
  };
}

export function createApp(ctx: ServerContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  app.use(requestLog(ctx));
  // While draining, only /ping, /health and /metrics answer (with the state); the rest is 503.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    if (ctx.host.state === 'draining' && !['/ping', '/health', '/metrics'].includes(req.path)) {
      next(new ApiError('unavailable', ctx.host.reason, { retryAfter: 10 }));
    } else next();
  });
  const router = express.Router();
  addStatusRoutes(router, ctx);
  addGenerateRoutes(router, ctx);
  app.use(router);
  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new ApiError('not_found', `no route ${req.method} ${req.path.slice(0, 200)}`));
  });
  app.use(errorHandler(ctx));
  return app;
}
