// --model / GYRE_MODEL -> a verified local folder. Three sources:
//   a local folder                    used in place (checked against its manifest, if any)
//   s3://bucket/prefix/               downloaded into a cache keyed by content (the manifest's
//                                     sha256, else the listing's ETags), never by the URI alone
//   nothing                           <GYRE_SAGEMAKER_ROOT or /opt/ml>/model, where SageMaker puts
//                                     uncompressed ModelDataSource files (hashed against the
//                                     manifest `gyre upload` wrote, when there is one)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Manifest, MANIFEST_NAME, parseManifest, verifyFolder } from './manifest';
import { modelFileExists, parseModelJson, readModelFile } from './model_file';
import { jsonLineLog } from './progress';
import type { DownloadOptions, DownloadResult } from './s3_download';

// The AWS SDK loads only when a model comes from S3: local folders keep the CLI's start fast.
const isS3Uri = (spec: string) => /^s3:\/\//i.test(spec);

export interface ResolveOptions extends DownloadOptions {
  /** Where s3:// models are cached (default GYRE_CACHE_DIR, else ~/.cache/gyre/models). */
  cacheDir?: string;
  /** Where /opt/ml is (default GYRE_SAGEMAKER_ROOT, else /opt/ml). */
  sagemakerRoot?: string;
  /** Hash local files against their manifest (default: for /opt/ml/model, which another party
   *  copied, yes; for a folder the user names, sizes only). s3 downloads are always hashed. */
  verifyHashes?: boolean;
  /** Also run validateModel (tokenizer optional: an ids-only model can be served) and throw
   *  with every error; the report is logged. */
  validate?: boolean;
}

export interface ResolvedModel {
  dir: string;
  source: 'local' | 'sagemaker' | 's3';
  uri?: string;
  manifest?: Manifest;
  /** Set when files were fetched; absent for a local folder or a cache hit. */
  download?: DownloadResult;
  cached?: boolean;
}

const COMPLETE = '.gyre-complete';

export function defaultCacheDir(): string {
  return process.env.GYRE_CACHE_DIR || path.join(os.homedir(), '.cache', 'gyre', 'models');
}

function readLocalManifest(dir: string): Manifest | undefined {
  if (!modelFileExists(dir, MANIFEST_NAME)) return undefined;
  // Read under the model-folder rules, and parsed once here so that an error never quotes it.
  const file = path.join(dir, MANIFEST_NAME);
  const text = readModelFile(dir, MANIFEST_NAME);
  parseModelJson(text, file);
  return parseManifest(text, file);
}

async function resolveLocal(dir: string, source: 'local' | 'sagemaker', opts: ResolveOptions): Promise<ResolvedModel> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a folder`);
  const manifest = readLocalManifest(dir);
  if (manifest) await verifyFolder(dir, manifest, opts.verifyHashes ?? source === 'sagemaker');
  return { dir: path.resolve(dir), source, manifest };
}

async function resolveS3(uri: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const { downloadConcurrency, fetchPlan, planDownload } = await import('./s3_download');
  const { makeS3Client } = await import('./s3_client');
  const client = await makeS3Client({ client: opts.client, maxSockets: downloadConcurrency(opts) });
  try {
    const plan = await planDownload(uri, client);
    const root = opts.cacheDir ?? defaultCacheDir();
    const dir = path.join(root, plan.key);
    if (fs.existsSync(path.join(dir, COMPLETE))) {
      // Hashed when it was downloaded; a size check catches a file damaged since.
      if (plan.manifest) await verifyFolder(dir, plan.manifest, false);
      const log = opts.progress?.log === false ? undefined : opts.progress?.log ?? jsonLineLog;
      log?.({ event: 'download_cached', uri: plan.uri, dir });
      return { dir, source: 's3', uri: plan.uri, manifest: plan.manifest, cached: true };
    }
    const partial = `${dir}.partial-${process.pid}-${Date.now()}`;
    try {
      const download = await fetchPlan(plan, partial, client, opts);
      fs.writeFileSync(path.join(partial, COMPLETE), JSON.stringify({ uri: plan.uri, time: new Date().toISOString() }));
      try {
        fs.renameSync(partial, dir);
      } catch (e) {
        // Another process finished the same content first: use theirs.
        if (!fs.existsSync(path.join(dir, COMPLETE))) throw e;
        fs.rmSync(partial, { recursive: true, force: true });
      }
      return { dir, source: 's3', uri: plan.uri, manifest: plan.manifest, download };
    } catch (e) {
      fs.rmSync(partial, { recursive: true, force: true });
      throw e;
    }
  } finally {
    if (!opts.client) client.destroy();
  }
}

/** Turns a model spec (folder, s3:// URI, or nothing for /opt/ml/model) into a verified local folder. */
export async function resolveModel(spec: string | undefined, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const resolved = await resolveSource(spec, opts);
  if (opts.validate) {
    const { validateModel } = await import('./validate');
    const { dir, ok, errors, warnings, architecture, dtype, quantization, weightBytes, kvCacheTokens } = await validateModel(resolved.dir, { requireTokenizer: false });
    const log = opts.progress?.log === false ? undefined : opts.progress?.log ?? jsonLineLog;
    log?.({ event: 'validate', dir, ok, architecture, dtype, quantization, weight_bytes: weightBytes, a10g_kv_tokens: kvCacheTokens, warnings, errors });
    if (!ok) throw new Error(`${dir}: not a valid model: ${errors.join('; ')}`);
  }
  return resolved;
}

async function resolveSource(spec: string | undefined, opts: ResolveOptions): Promise<ResolvedModel> {
  if (spec && isS3Uri(spec)) return resolveS3(spec, opts);
  const root = opts.sagemakerRoot ?? (process.env.GYRE_SAGEMAKER_ROOT || '/opt/ml');
  const dir = path.join(root, 'model');
  // The server passes /opt/ml/model by name when it is present; it is still SageMaker's copy.
  if (spec) return resolveLocal(spec, path.resolve(spec) === path.resolve(dir) ? 'sagemaker' : 'local', opts);
  if (!fs.existsSync(dir)) {
    throw new Error(`no model: give --model (a folder or s3://bucket/prefix/), set GYRE_MODEL, or put the model under ${dir}`);
  }
  return resolveLocal(dir, 'sagemaker', opts);
}
