// The served model's life: loading -> ready (after one warm-up generation) or failed (with the
// reason), and draining once SIGTERM arrives. /ping is 200 only while ready.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ServedModel, servedModel } from '../api/model';
import type { Engine, EngineOptions } from '../engine/engine';
import { gpuMemoryOptions, type ServeConfig } from './config';
import type { Logger } from './logger';

export type HostState = 'loading' | 'ready' | 'failed' | 'draining';

/** Engine.load, or a stand-in (tests hold the load back to see /ping answer 503). */
export type EngineLoader = (dir: string, opts: EngineOptions) => Promise<Engine>;

/** The model folder a config names, or an error that says what to do instead. */
export function modelDir(cfg: Pick<ServeConfig, 'model' | 'modelFrom'>, root = process.env.GYRE_SAGEMAKER_ROOT || '/opt/ml'): string {
  const m = cfg.model;
  if (!m) {
    throw new Error(`no model: set GYRE_MODEL (or HF_MODEL_ID) or --model to a model folder, or put the model under ${path.join(root, 'model')}`);
  }
  if (!fs.existsSync(m) || !fs.statSync(m).isDirectory()) {
    throw new Error(`${cfg.modelFrom}=${m}: not a folder (Hugging Face Hub ids are not downloaded; give a local folder)`);
  }
  return m;
}

/** The engine options a serve config gives (GPU memory settings included). */
export function engineOptions(cfg: ServeConfig): EngineOptions {
  const o: EngineOptions = { backend: cfg.backend, maxNumSeqs: cfg.maxSeqs, ...gpuMemoryOptions(cfg) };
  if (cfg.threads !== undefined) o.numThreads = cfg.threads;
  if (cfg.maxModelLen !== undefined) o.maxModelLen = cfg.maxModelLen;
  if (cfg.maxBatchTokens !== undefined) o.maxNumBatchedTokens = cfg.maxBatchTokens;
  if (cfg.quantization === 'int8') o.quantization = 'int8';
  if (cfg.quantizeLmHead) o.quantizeLmHead = true;
  return o;
}

/** One short greedy generation, so the first real request does not pay for cold paths. */
async function warmUp(engine: Engine): Promise<void> {
  // Through the tokenizer workers (as requests go), which also starts them.
  const promptIds = engine.tokenizer ? await engine.encodePrompt({ prompt: 'Hello' }) : [engine.config.bosTokenId];
  for await (const c of engine.generate({ promptIds, params: { maxTokens: 2, temperature: 0, ignoreEos: true } })) {
    if (c.finishReason === 'error' || c.finishReason === 'abort') throw new Error(`warm-up generation failed: ${c.error ?? c.finishReason}`);
  }
}

export class ModelHost {
  state: HostState = 'loading';
  reason = 'the model is loading';
  model?: ServedModel;
  private engine?: Engine;

  constructor(private readonly cfg: ServeConfig, private readonly logger: Logger,
              private readonly loadEngine?: EngineLoader) {}

  get name(): string {
    return this.model?.name ?? this.cfg.servedModelName ?? (this.cfg.model ? path.basename(path.resolve(this.cfg.model)) : 'none');
  }

  /** Loads, warms up, and becomes ready; on any failure becomes failed with the reason. */
  async load(): Promise<void> {
    const t0 = performance.now();
    this.logger.info({
      model: this.cfg.model, from: this.cfg.modelFrom, backend: this.cfg.backend, quantization: this.cfg.quantization,
      ...(this.cfg.quantizeLmHead ? { quantize_lm_head: true } : {}),
    }, 'loading the model');
    try {
      const dir = await this.resolve();
      const load = this.loadEngine ?? (await import('../engine/engine')).Engine.load;
      this.engine = await load(dir, engineOptions(this.cfg));
      const model = servedModel(this.engine, this.name, this.cfg.maxInputTokens);
      await warmUp(this.engine);
      if (this.state !== 'loading') return;   // draining began meanwhile
      this.model = model;
      this.state = 'ready';
      this.reason = 'ready';
      this.logger.info({
        model: model.name, backend: this.engine.backend, dtype: this.engine.config.dtype, quantization: this.engine.quantization,
        max_model_len: model.limits.maxModelLen,
        max_input_tokens: model.limits.maxInputTokens, load_ms: Math.round(performance.now() - t0),
      }, 'model ready');
    } catch (e) {
      if (this.state !== 'loading') return;
      this.state = 'failed';
      this.reason = `the model failed to load: ${(e as Error).message}`;
      this.logger.error({ err: (e as Error).message }, this.reason);
      await this.engine?.close().catch(() => undefined);
    }
  }

  /** The local folder: s3:// is downloaded and verified first (/ping stays 503 meanwhile); a
   *  folder is checked against its gyre-manifest.json, when it has one; then validated. */
  private async resolve(): Promise<string> {
    const m = this.cfg.model;
    const s3 = !!m && /^s3:\/\//i.test(m);
    const spec = s3 ? m! : modelDir(this.cfg);
    if (s3) this.reason = `the model is downloading from ${m}`;
    const { resolveModel } = await import('../model/model_source');
    try {
      const { dir } = await resolveModel(spec, {
        validate: true, progress: { bar: false, log: (e) => this.logger.info(e, String(e.event)) },
      });
      if (this.state === 'loading') this.reason = 'the model is loading';
      return dir;
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith(spec) ? `${this.cfg.modelFrom}=${msg}` : `${this.cfg.modelFrom}=${m}: ${msg}`);
    }
  }

  drain(): void {
    this.state = 'draining';
    this.reason = 'the server is shutting down';
  }

  /** Stops the engine (unfinished requests end with 'abort'). */
  async close(): Promise<void> {
    await this.engine?.close();
  }
}
