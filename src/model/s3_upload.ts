// Bring-your-own model upload: validate, hash, multipart-upload every model file in parallel
// (lib-storage), then write gyre-manifest.json last, so a reader that finds the manifest
// knows the upload finished. A LoRA adapter is merged first, and --quantize int8 writes 8-bit
// weights (`gyre quantize`) before the upload, each into a temporary folder removed afterwards.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { buildManifest, type Manifest, MANIFEST_NAME } from './manifest';
import { Progress, type ProgressOptions } from './progress';
import { makeS3Client, parseS3Uri, s3ErrorCode, s3Uri } from './s3_client';
import { formatReport, validateModel, type ValidationReport } from './validate';

export interface UploadOptions {
  /** A PEFT LoRA adapter folder to merge into the model before upload. */
  adapter?: string;
  /** int8: upload 8-bit weights (`gyre quantize`), half the bytes; the folder must be float. */
  quantize?: 'none' | 'int8';
  /** With quantize int8: the LM head too. */
  quantizeLmHead?: boolean;
  partSize?: number;        // multipart part size (default 16 MiB)
  concurrency?: number;     // parts in flight across all files (default 16)
  client?: S3Client;
  progress?: ProgressOptions;
}

export interface UploadResult {
  uri: string;
  manifest: Manifest;
  report: ValidationReport;
  bytes: number;
  seconds: number;
}

/** Uploads a model folder to s3://bucket/prefix/ and returns the URI to give the stack. */
export async function uploadModel(dir: string, to: string, opts: UploadOptions = {}): Promise<UploadResult> {
  const loc = parseS3Uri(to);
  let modelDir = dir;
  let tmp: string | undefined;
  try {
    if (opts.adapter) {
      const { mergeLora } = await import('./lora');
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-merge-'));
      modelDir = path.join(tmp, 'model');
      await mergeLora(dir, opts.adapter, modelDir);   // validates the result
    }
    if (opts.quantizeLmHead && opts.quantize !== 'int8') throw new Error('--quantize-lm-head needs --quantize int8');
    if (opts.quantize === 'int8') {
      const { quantizeModel } = await import('./quantize');
      tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-quantize-'));
      const out = path.join(tmp, 'int8');
      await quantizeModel(modelDir, out, { quantizeLmHead: opts.quantizeLmHead, progress: opts.progress });   // validates the result
      modelDir = out;
    } else if (opts.quantize !== undefined && opts.quantize !== 'none') {
      throw new Error(`--quantize ${String(opts.quantize)}: expected none or int8`);
    }
    const report = await validateModel(modelDir);
    if (!report.ok) throw new Error(`refusing to upload an invalid model:\n${formatReport(report)}`);
    const manifest = await buildManifest(modelDir, {
      architecture: report.architecture, dtype: report.dtype,
      ...(report.quantization === 'int8' ? { quantization: 'int8' } : {}),
      ...(opts.adapter ? { adapter: path.basename(path.resolve(opts.adapter)) } : {}),
    });
    const client = await makeS3Client({ client: opts.client, maxSockets: opts.concurrency ?? 16 });
    try {
      const { bytes, seconds } = await putFiles(client, modelDir, loc, manifest, opts);
      const body = JSON.stringify(manifest, null, 2) + '\n';
      await client.send(new PutObjectCommand({
        Bucket: loc.bucket, Key: loc.prefix + MANIFEST_NAME, Body: body, ContentType: 'application/json',
      })).catch((e) => { throw new Error(`${s3Uri(loc, MANIFEST_NAME)}: ${failure(e, loc.bucket)}`); });
      return { uri: s3Uri(loc), manifest, report, bytes, seconds };
    } finally {
      if (!opts.client) client.destroy();
    }
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function failure(e: unknown, bucket: string): string {
  const code = s3ErrorCode(e);
  if (code === 'NoSuchBucket') return `the bucket '${bucket}' does not exist (NoSuchBucket)`;
  return `upload failed: ${(e as Error).message}`;
}

async function putFiles(client: S3Client, dir: string, loc: ReturnType<typeof parseS3Uri>, manifest: Manifest,
                        opts: UploadOptions): Promise<{ bytes: number; seconds: number }> {
  const partSize = Math.max(opts.partSize ?? 16 << 20, 5 << 20);   // S3's minimum part is 5 MiB
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const total = manifest.files.reduce((n, f) => n + f.size, 0);
  const progress = new Progress('upload', total, { uri: s3Uri(loc), files: manifest.files.length }, opts.progress);
  // Files go up a few at a time, each with its parts in parallel: `concurrency` parts overall.
  const perFile = Math.max(1, Math.min(4, concurrency));
  const filesAtOnce = Math.max(1, Math.floor(concurrency / perFile));
  let next = 0;
  let failed: Error | undefined;
  const worker = async () => {
    while (!failed && next < manifest.files.length) {
      const f = manifest.files[next++];
      const key = loc.prefix + f.name;
      const upload = new Upload({
        client, partSize, queueSize: perFile, leavePartsOnError: false,
        params: { Bucket: loc.bucket, Key: key, Body: fs.createReadStream(path.join(dir, f.name), { highWaterMark: 1 << 20 }), ContentLength: f.size },
      });
      let sent = 0;
      upload.on('httpUploadProgress', (p) => {
        const loaded = p.loaded ?? 0;
        if (loaded > sent) { progress.add(loaded - sent); sent = loaded; }
      });
      try {
        await upload.done();
      } catch (e) {
        failed ??= new Error(`${s3Uri(loc, f.name)}: ${failure(e, loc.bucket)}`);
        return;
      }
      if (sent < f.size) progress.add(f.size - sent);
    }
  };
  await Promise.all(Array.from({ length: Math.min(filesAtOnce, manifest.files.length) }, worker));
  const last = progress.finish({ ok: !failed });
  if (failed) throw failed;
  return { bytes: total, seconds: last.seconds as number };
}
