// The generation routes: SageMaker's /invocations (any of the three bodies), TGI's /generate and
// /generate_stream, OpenAI's /v1/chat/completions and /v1/completions. Each reads the body,
// checks readiness, validates, plans, and hands over to runPlan. The response format, streaming
// or not, follows the body's API.
import type { Request, Response, Router } from 'express';
import { type BodyKind, detectBody } from '../api/detect';
import { ApiError, type ApiStyle } from '../api/errors';
import type { ServedModel } from '../api/model';
import { parseChat, parseCompletion, planOpenAi } from '../api/openai_request';
import { OpenAiFormat } from '../api/openai_response';
import { parseTgi, planTgi } from '../api/tgi_request';
import { TgiFormat } from '../api/tgi_response';
import { readJson } from './body';
import type { ServerContext } from './context';
import { type GenerationRecord, type SlowClientPolicy, runPlan } from './generation';

/** The served model, or a 503 that says why there is none. */
export function readyModel(ctx: ServerContext): ServedModel {
  const { host } = ctx;
  if (host.state === 'ready' && host.model) return host.model;
  throw new ApiError('unavailable', host.reason, { retryAfter: host.state === 'loading' ? 5 : 10 });
}

function setStyle(res: Response, style: ApiStyle): void {
  res.locals.style = style;
}

/** streamRoute: true always streams, false never does, undefined follows the body's "stream". */
async function generate(ctx: ServerContext, res: Response, body: unknown, kind: BodyKind,
                        opts: { streamRoute?: boolean; wrap?: boolean } = {}): Promise<void> {
  const startMs = res.locals.startMs as number;
  setStyle(res, kind === 'tgi' ? 'tgi' : 'openai');
  const model = readyModel(ctx);
  if (kind === 'tgi') {
    const req = parseTgi(body, opts.streamRoute);
    const record: GenerationRecord = { api: 'tgi', stream: req.stream, choices: 1, unknownFields: req.unknown };
    res.locals.generation = record;
    const plan = await planTgi(req, model);
    await track(res, runPlan(model, ctx.admission, res, plan, new TgiFormat(req, model, opts.wrap ?? false), req.stream, record, startMs, slowClients(ctx, record)));
    return;
  }
  const req = kind === 'chat' ? parseChat(body) : parseCompletion(body);
  const record: GenerationRecord = { api: kind, stream: req.stream, choices: req.n, unknownFields: req.unknown };
  res.locals.generation = record;
  const plan = await planOpenAi(req, model);
  record.choices = plan.requests.length;
  await track(res, runPlan(model, ctx.admission, res, plan, new OpenAiFormat(req, model, ctx.fingerprint), req.stream, record, startMs, slowClients(ctx, record)));
}

function slowClients(ctx: ServerContext, record: GenerationRecord): SlowClientPolicy {
  return {
    maxBufferBytes: ctx.cfg.maxResponseBufferBytes,
    onAbort(buffered) {
      ctx.metrics.countSlowClientAbort();
      ctx.logger.warn({ api: record.api, choices: record.choices, buffered_bytes: buffered, max_buffer_bytes: ctx.cfg.maxResponseBufferBytes },
        'aborted a client that fell behind its stream');
    },
  };
}

/** The request log waits for this when the client leaves before the generation has wound down. */
function track(res: Response, run: Promise<void>): Promise<void> {
  res.locals.pending = run.catch(() => undefined);
  return run;
}

export function addGenerateRoutes(router: Router, ctx: ServerContext): void {
  // SageMaker's route; TGI's `/` takes the same bodies and answers the same way.
  router.post(['/invocations', '/'], async (req: Request, res: Response) => {
    setStyle(res, 'tgi');
    const body = await readJson(req, ctx.bodyLimits);
    let kind: BodyKind | undefined;
    try {
      kind = detectBody(body);
    } catch (e) {
      readyModel(ctx);     // not ready outranks a bad body
      throw e;
    }
    await generate(ctx, res, body, kind, { wrap: true });
  });
  // As in TGI, /generate never streams and /generate_stream always does.
  router.post('/generate', async (req: Request, res: Response) => {
    setStyle(res, 'tgi');
    await generate(ctx, res, await readJson(req, ctx.bodyLimits), 'tgi', { streamRoute: false });
  });
  router.post('/generate_stream', async (req: Request, res: Response) => {
    setStyle(res, 'tgi');
    await generate(ctx, res, await readJson(req, ctx.bodyLimits), 'tgi', { streamRoute: true });
  });
  router.post('/v1/chat/completions', async (req: Request, res: Response) => {
    setStyle(res, 'openai');
    await generate(ctx, res, await readJson(req, ctx.bodyLimits), 'chat');
  });
  router.post('/v1/completions', async (req: Request, res: Response) => {
    setStyle(res, 'openai');
    await generate(ctx, res, await readJson(req, ctx.bodyLimits), 'completion');
  });
}
