// gyre serve's settings: a flag wins, then Gyre's GYRE_* variable, then the TGI/LMI name, then the
// default. Every default works without tuning; a malformed value is an error that names it.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Backend = 'auto' | 'cpu' | 'cuda';
export type Quantization = 'none' | 'int8';

export interface ServeConfig {
  /** A folder, an s3:// URI (downloaded before the load), or undefined (nothing found). */
  model?: string;
  modelFrom: string;              // where the model setting came from, for the log
  servedModelName?: string;
  host: string;
  port: number;
  backend: Backend;
  maxModelLen?: number;           // undefined: the model's
  maxInputTokens?: number;        // undefined: maxModelLen - 1
  maxBatchTokens?: number;        // undefined: the engine's (2048)
  maxSeqs: number;
  maxWaiting: number;
  threads?: number;               // undefined: all cores
  drainTimeoutMs: number;         // SIGTERM: in-flight requests get this long
  requestDeadlineMs: number;      // non-streaming requests end with 'length' after this; 0: never
  emfIntervalMs: number;          // 0: no EMF lines
  stayUpOnLoadFailure: boolean;   // a model that fails to load: keep serving /ping 503 instead of exiting
  gpuMemoryFraction?: number;     // share of GPU memory the CUDA backend uses (its default: 0.9)
  gpuMemoryBudget?: string;       // absolute cap, e.g. 24G (emulates an A10G on a larger card)
  quantization: Quantization;     // int8: float weights quantized at load (int8 files run int8 anyway)
  quantizeLmHead: boolean;        // with int8: the LM head too
  maxResponseBufferBytes: number; // a stream further behind than this is aborted (slow client)
  bodyTimeoutMs: number;          // a request body must arrive within this (408)
  maxBodyBytesInFlight: number;   // request bodies being received, all together (503 past it)
}

export class ConfigError extends Error {}

export const DEFAULTS = {
  port: 8080,
  maxSeqs: 256,
  maxWaiting: 1024,
  drainTimeoutS: 25,
  emfIntervalS: 10,
  maxResponseBufferBytes: 1024 * 1024,
  bodyTimeoutS: 30,
  maxBodyBytesInFlight: 64 * 1024 * 1024,
  /** Under SageMaker: just under its 60 s invocation timeout, leaving time to answer. */
  sageMakerDeadlineS: 55,
};

type Env = Record<string, string | undefined>;

function int(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isSafeInteger(n) || n < min) throw new ConfigError(`${name}=${raw}: expected an integer >= ${min}`);
  return n;
}

/** The first of flag / env names that is set, parsed as an integer >= min. */
function intSetting(flags: Record<string, unknown>, flag: string, env: Env, names: string[], min: number): number | undefined {
  const v = flags[flag];
  if (v !== undefined) {
    const n = typeof v === 'number' ? v : int(`--${flag}`, String(v), min);
    if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`--${flag}: expected an integer >= ${min}`);
    return n;
  }
  for (const name of names) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') return int(name, raw, min);
  }
  return undefined;
}

function flag(name: string, raw: unknown): boolean | undefined {
  if (typeof raw === 'boolean') return raw;
  if (raw === undefined || raw === '') return undefined;
  const v = String(raw).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`${name}=${String(raw)}: expected true or false`);
}

/**
 * Running as a SageMaker endpoint: the image's entry point (container/serve, which SageMaker
 * starts as `serve`) sets GYRE_SAGEMAKER=1. It turns on the request deadline and the EMF lines.
 */
export function underSageMaker(env: Env = process.env): boolean {
  return flag('GYRE_SAGEMAKER', env.GYRE_SAGEMAKER) ?? false;
}

function deadlineMs(flags: Record<string, unknown>, env: Env, sageMaker: boolean): number {
  const raw = flags.requestDeadline ?? env.GYRE_REQUEST_DEADLINE_S;
  if (raw === undefined || raw === '') return sageMaker ? 1000 * DEFAULTS.sageMakerDeadlineS : 0;
  const s = Number(raw);
  if ((typeof raw === 'string' && raw.trim() === '') || !Number.isFinite(s) || s < 0) {
    throw new ConfigError(`${flags.requestDeadline !== undefined ? '--request-deadline ' : 'GYRE_REQUEST_DEADLINE_S='}${String(raw)}: expected seconds >= 0 (0: no deadline)`);
  }
  return Math.round(1000 * s);
}

function modelSetting(flags: Record<string, unknown>, env: Env): { model?: string; from: string } {
  if (typeof flags.model === 'string' && flags.model) return { model: flags.model, from: '--model' };
  for (const name of ['GYRE_MODEL', 'HF_MODEL_ID']) {
    if (env[name]) return { model: env[name], from: name };
  }
  const root = env.GYRE_SAGEMAKER_ROOT || '/opt/ml';
  const dir = path.join(root, 'model');
  if (fs.existsSync(dir)) return { model: dir, from: `${root}/model` };
  return { from: 'none' };
}

function quantizationSettings(flags: Record<string, unknown>, env: Env): Pick<ServeConfig, 'quantization' | 'quantizeLmHead'> {
  const fromFlag = flags.quantization !== undefined;
  const raw = String(flags.quantization ?? (env.GYRE_QUANTIZATION || 'none'));
  if (raw !== 'none' && raw !== 'int8') {
    throw new ConfigError(`${fromFlag ? '--quantization ' : 'GYRE_QUANTIZATION='}${raw}: expected none or int8`);
  }
  let quantizeLmHead = false;
  const head = flags.quantizeLmHead ?? env.GYRE_QUANTIZE_LM_HEAD;
  if (typeof head === 'boolean') quantizeLmHead = head;
  else if (head !== undefined && head !== '') {
    const v = String(head).toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) quantizeLmHead = true;
    else if (!['0', 'false', 'no', 'off'].includes(v)) throw new ConfigError(`GYRE_QUANTIZE_LM_HEAD=${String(head)}: expected true or false`);
  }
  if (quantizeLmHead && raw !== 'int8') {
    throw new ConfigError('GYRE_QUANTIZE_LM_HEAD / --quantize-lm-head needs GYRE_QUANTIZATION=int8 (--quantization int8)');
  }
  return { quantization: raw, quantizeLmHead };
}

/** Bytes in a size such as 24G, 20.5GiB, 22000M or a plain number (K, M, G, T: powers of 1024). */
export function parseSize(size: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])i?B?|B)?$/i.exec(size.trim());
  if (!m) throw new ConfigError(`${size}: expected a size such as 24G, 22000M or bytes`);
  const scale = m[2] ? 1024 ** ('KMGT'.indexOf(m[2].toUpperCase()) + 1) : 1;
  return Math.round(parseFloat(m[1]) * scale);
}

/** The engine's GPU memory options (the budget in bytes) for these settings. */
export function gpuMemoryOptions(cfg: Pick<ServeConfig, 'gpuMemoryFraction' | 'gpuMemoryBudget'>):
    { gpuMemoryFraction?: number; gpuMemoryBudget?: number } {
  const o: { gpuMemoryFraction?: number; gpuMemoryBudget?: number } = {};
  if (cfg.gpuMemoryFraction !== undefined) o.gpuMemoryFraction = cfg.gpuMemoryFraction;
  if (cfg.gpuMemoryBudget !== undefined) o.gpuMemoryBudget = parseSize(cfg.gpuMemoryBudget);
  return o;
}

/** GYRE_GPU_MEMORY_FRACTION / GYRE_GPU_MEMORY_BUDGET (or the flags), checked. */
export function gpuMemorySettings(flags: Record<string, unknown>, env: Env): Pick<ServeConfig, 'gpuMemoryFraction' | 'gpuMemoryBudget'> {
  const fractionRaw = flags.gpuMemoryFraction ?? env.GYRE_GPU_MEMORY_FRACTION;
  let gpuMemoryFraction: number | undefined;
  if (fractionRaw !== undefined && fractionRaw !== '') {
    gpuMemoryFraction = Number(fractionRaw);
    if (!(gpuMemoryFraction > 0 && gpuMemoryFraction <= 1)) {
      throw new ConfigError(`GYRE_GPU_MEMORY_FRACTION=${String(fractionRaw)}: expected a number in (0, 1]`);
    }
  }
  const budgetRaw = flags.gpuMemoryBudget ?? env.GYRE_GPU_MEMORY_BUDGET;
  let gpuMemoryBudget: string | undefined;
  if (budgetRaw !== undefined && budgetRaw !== '') {
    gpuMemoryBudget = String(budgetRaw);
    if (!/^\d+(\.\d+)?\s*([KMGT]i?B?|B)?$/i.test(gpuMemoryBudget) || !(parseFloat(gpuMemoryBudget) > 0)) {
      throw new ConfigError(`GYRE_GPU_MEMORY_BUDGET=${gpuMemoryBudget}: expected a size such as 24G, 22000M or bytes`);
    }
  }
  return { gpuMemoryFraction, gpuMemoryBudget };
}

export function resolveConfig(flags: Record<string, unknown>, env: Env = process.env): ServeConfig {
  const quantization = quantizationSettings(flags, env);
  const { model, from } = modelSetting(flags, env);
  const backendRaw = String(flags.backend ?? env.GYRE_BACKEND ?? 'auto');
  if (!['auto', 'cpu', 'cuda'].includes(backendRaw)) {
    throw new ConfigError(`backend "${backendRaw}": expected auto, cpu or cuda`);
  }
  const name = typeof flags.servedModelName === 'string' ? flags.servedModelName : env.GYRE_SERVED_MODEL_NAME;
  const sageMaker = underSageMaker(env);
  // EMF lines are for CloudWatch: on by default only under SageMaker; GYRE_EMF_INTERVAL asks for them anywhere.
  const emfIntervalS = intSetting(flags, 'emfInterval', env, ['GYRE_EMF_INTERVAL'], 0) ?? (sageMaker ? DEFAULTS.emfIntervalS : 0);
  return {
    model,
    modelFrom: from,
    servedModelName: name || undefined,
    host: typeof flags.host === 'string' ? flags.host : (env.GYRE_HOST || '0.0.0.0'),
    port: intSetting(flags, 'port', env, ['SAGEMAKER_BIND_TO_PORT', 'GYRE_PORT'], 0) ?? DEFAULTS.port,
    backend: backendRaw as Backend,
    maxModelLen: intSetting(flags, 'maxModelLen', env, ['GYRE_MAX_MODEL_LEN', 'MAX_TOTAL_TOKENS'], 2),
    maxInputTokens: intSetting(flags, 'maxInputTokens', env, ['GYRE_MAX_INPUT_TOKENS', 'MAX_INPUT_TOKENS', 'MAX_INPUT_LENGTH'], 1),
    maxBatchTokens: intSetting(flags, 'maxBatchTokens', env, ['GYRE_MAX_BATCH_TOKENS', 'MAX_BATCH_PREFILL_TOKENS'], 1),
    maxSeqs: intSetting(flags, 'maxSeqs', env, ['GYRE_MAX_SEQS'], 1) ?? DEFAULTS.maxSeqs,
    maxWaiting: intSetting(flags, 'maxWaiting', env, ['GYRE_MAX_WAITING'], 0) ?? DEFAULTS.maxWaiting,
    threads: intSetting(flags, 'threads', env, ['GYRE_THREADS'], 0),
    drainTimeoutMs: 1000 * (intSetting(flags, 'drainTimeout', env, ['GYRE_DRAIN_TIMEOUT'], 0) ?? DEFAULTS.drainTimeoutS),
    requestDeadlineMs: deadlineMs(flags, env, sageMaker),
    emfIntervalMs: 1000 * emfIntervalS,
    stayUpOnLoadFailure: flag('GYRE_STAY_UP_ON_LOAD_FAILURE', flags.stayUpOnLoadFailure ?? env.GYRE_STAY_UP_ON_LOAD_FAILURE) ?? false,
    ...gpuMemorySettings(flags, env),
    ...quantization,
    maxResponseBufferBytes: intSetting(flags, 'maxResponseBuffer', env, ['GYRE_MAX_RESPONSE_BUFFER'], 1) ?? DEFAULTS.maxResponseBufferBytes,
    bodyTimeoutMs: 1000 * (intSetting(flags, 'bodyTimeout', env, ['GYRE_BODY_TIMEOUT'], 1) ?? DEFAULTS.bodyTimeoutS),
    maxBodyBytesInFlight: intSetting(flags, 'maxBodyBytesInFlight', env, ['GYRE_MAX_BODY_BYTES_IN_FLIGHT'], 1) ?? DEFAULTS.maxBodyBytesInFlight,
  };
}
