// Parallel ranged-GET download of a model folder from S3.
//
// Every file is cut into parts of `partSize` bytes; one queue of parts (small files first, then
// the shards in order) feeds `concurrency` workers, so many ranges are in flight across files.
// Each part streams straight into its place in the file (positional writes, never a whole file
// in memory). A part that fails mid-stream is retried with backoff from the byte where it broke;
// the other parts are untouched. A finished file is checked for size, then hashed against
// gyre-manifest.json while the rest keep downloading.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isModelFile, type Manifest, MANIFEST_NAME, manifestKey, parseManifest, sha256File } from './manifest';
import { jsonLineLog, Progress, type ProgressOptions } from './progress';
import { makeS3Client, parseS3Uri, s3ErrorCode, type S3Location, s3Uri } from './s3_client';

export interface DownloadOptions {
  partSize?: number;       // bytes per ranged GET (default GYRE_S3_PART_MIB, else 16 MiB)
  concurrency?: number;    // GETs in flight (default GYRE_S3_CONCURRENCY, else 32: ~14 connections
                           // fill 10 Gbit/s at ~90 MB/s each; the rest covers request latency)
  maxAttempts?: number;    // per part (default 6)
  retryBaseMs?: number;    // first backoff (default 250 ms, doubling, with jitter)
  client?: S3Client;
  progress?: ProgressOptions;
}

export interface RemoteFile { name: string; size: number; etag?: string; sha256?: string }

/** What is at an s3:// prefix: the files to fetch and, when present, the manifest. */
export interface DownloadPlan {
  uri: string;
  loc: S3Location;
  files: RemoteFile[];
  manifest?: Manifest;
  manifestText?: string;
  /** Content key: the manifest's sha256, else of the listing's (name, size, ETag). */
  key: string;
}

export interface DownloadResult {
  dir: string;
  files: RemoteFile[];
  bytes: number;
  seconds: number;
  mbPerSecond: number;
  retries: number;
}

const MIB = 1 << 20;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
}

/** GETs in flight (and so sockets needed) for these options. */
export function downloadConcurrency(opts: DownloadOptions): number {
  return opts.concurrency ?? envInt('GYRE_S3_CONCURRENCY', 32);
}

function describe(e: unknown): string {
  const code = s3ErrorCode(e);
  const msg = (e as Error)?.message ?? String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/** Non-retryable S3 answers: retrying will not make the key or the permission appear. */
function isPermanent(e: unknown): boolean {
  const status = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return status === 400 || status === 403 || status === 404 || status === 412 || status === 416;
}

async function readBody(body: unknown): Promise<string> {
  return (body as { transformToString(): Promise<string> }).transformToString();
}

/** Lists the prefix and reads the manifest. Errors name the bucket or key. */
export async function planDownload(uri: string, client: S3Client): Promise<DownloadPlan> {
  const loc = parseS3Uri(uri);
  const listed = new Map<string, RemoteFile>();
  let token: string | undefined;
  do {
    let page;
    try {
      page = await client.send(new ListObjectsV2Command({
        Bucket: loc.bucket, Prefix: loc.prefix, Delimiter: '/', ContinuationToken: token,
      }));
    } catch (e) {
      if (s3ErrorCode(e) === 'NoSuchBucket') throw new Error(`${s3Uri(loc)}: the bucket '${loc.bucket}' does not exist (NoSuchBucket)`);
      throw new Error(`${s3Uri(loc)}: cannot list the prefix: ${describe(e)}`);
    }
    for (const o of page.Contents ?? []) {
      const name = o.Key!.slice(loc.prefix.length);
      if (name) listed.set(name, { name, size: o.Size ?? 0, etag: o.ETag });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (!listed.size) throw new Error(`${s3Uri(loc)}: no objects under this prefix (is the URI right?)`);

  let manifest: Manifest | undefined;
  let manifestText: string | undefined;
  let files: RemoteFile[];
  if (listed.has(MANIFEST_NAME)) {
    const key = loc.prefix + MANIFEST_NAME;
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: key }));
      manifestText = await readBody(r.Body);
    } catch (e) {
      throw new Error(`${s3Uri(loc, MANIFEST_NAME)}: cannot read: ${describe(e)}`);
    }
    manifest = parseManifest(manifestText, s3Uri(loc, MANIFEST_NAME));
    files = manifest.files.map((f) => {
      const o = listed.get(f.name);
      if (!o) throw new Error(`${s3Uri(loc, f.name)}: missing in S3 (listed in ${MANIFEST_NAME})`);
      if (o.size !== f.size) {
        throw new Error(`${s3Uri(loc, f.name)}: ${o.size} bytes in S3, but ${MANIFEST_NAME} says ${f.size}`);
      }
      return { ...o, sha256: f.sha256 };
    });
  } else {
    files = [...listed.values()].filter((f) => isModelFile(f.name));
    if (!listed.has('config.json')) throw new Error(`${s3Uri(loc, 'config.json')}: not found (no model folder at ${s3Uri(loc)})`);
  }
  // Small files first, then the shards in name order, so shards complete one after another.
  files.sort((a, b) => Number(a.name.endsWith('.safetensors')) - Number(b.name.endsWith('.safetensors')) ||
    a.name.localeCompare(b.name));
  const key = manifestKey(manifestText ?? JSON.stringify(files.map((f) => [f.name, f.size, f.etag])));
  return { uri: s3Uri(loc), loc, files, manifest, manifestText, key };
}

interface Part { file: FileJob; start: number; end: number; done: number } // [start, end)
interface FileJob { remote: RemoteFile; path: string; fh?: Promise<fs.promises.FileHandle>; partsLeft: number }

/** Downloads a plan's files into dir (created), then verifies each. */
export async function fetchPlan(plan: DownloadPlan, dir: string, client: S3Client,
                                opts: DownloadOptions = {}): Promise<DownloadResult> {
  const partSize = Math.max(opts.partSize ?? envInt('GYRE_S3_PART_MIB', 16) * MIB, 64 * 1024);
  const concurrency = downloadConcurrency(opts);
  const maxAttempts = opts.maxAttempts ?? 6;
  const retryBaseMs = opts.retryBaseMs ?? 250;
  fs.mkdirSync(dir, { recursive: true });
  const total = plan.files.reduce((n, f) => n + f.size, 0);
  const progress = new Progress('download', total, { uri: plan.uri, files: plan.files.length }, opts.progress);
  const log = opts.progress?.log === false ? undefined : opts.progress?.log ?? jsonLineLog;

  const parts: Part[] = [];
  const jobs: FileJob[] = plan.files.map((remote) => {
    const job: FileJob = { remote, path: path.join(dir, remote.name), partsLeft: 0 };
    for (let start = 0; start < remote.size; start += partSize) {
      parts.push({ file: job, start, end: Math.min(start + partSize, remote.size), done: 0 });
      job.partsLeft++;
    }
    return job;
  });
  const abort = new AbortController();
  const verifications: Promise<void>[] = [];
  let failure: Error | undefined;
  let retries = 0;

  const fail = (e: Error) => {
    failure ??= e;
    abort.abort();
  };
  // One handle per file, opened (and truncated) once however many parts start together.
  const open = (job: FileJob) => (job.fh ??= fs.promises.open(job.path, 'w'));

  const getPart = async (p: Part): Promise<void> => {
    const key = plan.loc.prefix + p.file.remote.name;
    const fh = await open(p.file);
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await client.send(new GetObjectCommand({
          Bucket: plan.loc.bucket, Key: key, Range: `bytes=${p.start + p.done}-${p.end - 1}`,
          IfMatch: p.file.remote.etag,   // every part from the same version of the object
        }), { abortSignal: abort.signal });
        // Socket chunks (~64 KiB) are gathered into one writev per MiB: fewer syscalls and promises.
        let batch: Uint8Array[] = [], batched = 0;
        const flush = async () => {
          if (!batched) return;
          await fh.writev(batch, p.start + p.done);
          p.done += batched;
          progress.add(batched);
          batch = [];
          batched = 0;
        };
        try {
          for await (const chunk of r.Body as AsyncIterable<Uint8Array>) {
            if (p.start + p.done + batched + chunk.byteLength > p.end) throw new Error('the server sent more bytes than the range');
            batch.push(chunk);
            batched += chunk.byteLength;
            if (batched >= MIB) await flush();
          }
        } finally {
          await flush();   // what arrived before a drop is kept: the retry resumes after it
        }
        if (p.start + p.done !== p.end) throw new Error(`short read: ${p.done} of ${p.end - p.start} bytes`);
        return;
      } catch (e) {
        if (abort.signal.aborted) throw failure ?? e;
        if (isPermanent(e)) {
          const code = s3ErrorCode(e);
          const what = code === 'NoSuchKey' || code === 'NotFound' ? 'not found (NoSuchKey)'
            : code === 'PreconditionFailed' ? `changed in S3 during the download (no longer ETag ${p.file.remote.etag})` : describe(e);
          throw new Error(`${s3Uri(plan.loc, p.file.remote.name)}: ${what}`);
        }
        if (attempt >= maxAttempts) {
          throw new Error(`${s3Uri(plan.loc, p.file.remote.name)}: bytes ${p.start}-${p.end - 1} failed ${attempt} times: ${describe(e)}`);
        }
        retries++;
        const delay = retryBaseMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
        log?.({ event: 'download_retry', key, start: p.start + p.done, end: p.end, attempt, error: describe(e) });
        await new Promise((res) => setTimeout(res, delay));
      }
    }
  };

  const finishFile = async (job: FileJob) => {
    const fh = await open(job);   // an empty file has no parts and is only created here
    job.fh = undefined;
    const size = (await fh.stat()).size;
    await fh.close();
    const name = s3Uri(plan.loc, job.remote.name);
    if (size !== job.remote.size) throw new Error(`${name}: downloaded ${size} bytes, expected ${job.remote.size}`);
    if (!job.remote.sha256 && job.remote.etag) {
      // No hash to check: a store that ignores If-Match could have served ranges of two versions.
      let etag: string | undefined;
      try {
        etag = (await client.send(new HeadObjectCommand({ Bucket: plan.loc.bucket, Key: plan.loc.prefix + job.remote.name }),
          { abortSignal: abort.signal })).ETag;
      } catch (e) {
        throw new Error(`${name}: cannot check its ETag after the download: ${describe(e)}`);
      }
      if (etag !== job.remote.etag) {
        await fs.promises.rm(job.path, { force: true });
        throw new Error(`${name}: changed in S3 during the download (ETag ${job.remote.etag} when listed, now ${etag ?? 'none'}); the file was discarded`);
      }
    }
    if (job.remote.sha256) {
      const sha = await sha256File(job.path);
      if (sha !== job.remote.sha256) {
        throw new Error(`${name}: sha256 ${sha} does not match ${MANIFEST_NAME} (${job.remote.sha256}); ` +
          'the object was altered or corrupted after upload');
      }
    }
  };
  const verify = (job: FileJob) => verifications.push(finishFile(job).catch((e) => fail(e as Error)));

  for (const job of jobs) if (job.partsLeft === 0) verify(job);
  let next = 0;
  const worker = async () => {
    while (!failure && next < parts.length) {
      const p = parts[next++];
      try {
        await getPart(p);
      } catch (e) {
        fail(e as Error);
        return;
      }
      if (--p.file.partsLeft === 0) verify(p.file);
    }
  };
  let seconds = 0;
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, parts.length || 1) }, worker));
    await Promise.all(verifications);
  } finally {
    await Promise.all(jobs.map((j) => j.fh?.then((fh) => fh.close()).catch(() => undefined)));
    seconds = progress.finish({ ok: !failure, retries, ...(failure ? { error: failure.message } : {}) }).seconds as number;
  }
  if (failure) throw failure;
  if (plan.manifestText) fs.writeFileSync(path.join(dir, MANIFEST_NAME), plan.manifestText);
  return { dir, files: plan.files, bytes: total, seconds, mbPerSecond: seconds > 0 ? total / 1e6 / seconds : 0, retries };
}

/** Downloads the model at an s3:// URI into dir. */
export async function downloadModel(uri: string, dir: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const client = await makeS3Client({ client: opts.client, maxSockets: downloadConcurrency(opts) });
  try {
    return await fetchPlan(await planDownload(uri, client), dir, client, opts);
  } finally {
    if (!opts.client) client.destroy();
  }
}
