// Status routes: SageMaker's /ping, TGI's /health and /info, OpenAI's /v1/models, Prometheus'
// /metrics. None of them needs a body.
import type { Request, Response, Router } from 'express';
import { MAX_STOP_SEQUENCES } from '../api/tgi_request';
import type { ServerContext } from './context';
import { readyModel } from './routes_generate';

export function addStatusRoutes(router: Router, ctx: ServerContext): void {
  // 200 only once the model is loaded and warmed up; otherwise 503 with the state and reason.
  router.get('/ping', (_req: Request, res: Response) => {
    const { state, reason } = ctx.host;
    if (state === 'ready') res.status(200).json({ status: 'ok' });
    else res.status(503).json({ status: state, error: reason });
  });

  router.get('/health', (_req: Request, res: Response) => {
    res.locals.style = 'tgi';
    readyModel(ctx);
    res.status(200).end();
  });

  router.get('/info', (_req: Request, res: Response) => {
    res.locals.style = 'tgi';
    const model = readyModel(ctx);
    const { cfg } = ctx;
    res.json({
      model_id: model.name,
      model_sha: null,
      model_dtype: model.engine.config.dtype,
      quantization: model.engine.quantization,   // Gyre's: none, or int8 weights
      model_device_type: model.engine.backend,
      model_pipeline_tag: 'text-generation',
      max_concurrent_requests: cfg.maxSeqs + cfg.maxWaiting,
      max_best_of: 1,
      max_stop_sequences: MAX_STOP_SEQUENCES,
      max_input_tokens: model.limits.maxInputTokens,
      max_input_length: model.limits.maxInputTokens,
      max_total_tokens: model.limits.maxModelLen,
      max_batch_total_tokens: cfg.maxBatchTokens ?? null,
      max_batch_size: cfg.maxSeqs,
      validation_workers: 1,
      max_client_batch_size: 1,
      router: 'gyre',
      version: ctx.version,
      sha: null,
      docker_label: null,
    });
  });

  router.get('/v1/models', (_req: Request, res: Response) => {
    res.locals.style = 'openai';
    const model = readyModel(ctx);
    res.json({
      object: 'list',
      data: [{ id: model.name, object: 'model', created: 0, owned_by: 'gyre', root: model.engine.modelDir, max_model_len: model.limits.maxModelLen }],
    });
  });

  router.get('/metrics', async (_req: Request, res: Response) => {
    const text = await ctx.metrics.text();
    res.setHeader('Content-Type', ctx.metrics.contentType);
    res.send(text);
  });
}
