// gyre-manifest.json: the size and sha256 of every file of an uploaded model. Written last by
// `gyre upload`, so its presence also says the upload finished; downloads verify against it,
// and its own hash keys the download cache (content, never the URI).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openModelFile } from './model_file';

export const MANIFEST_NAME = 'gyre-manifest.json';
export const MANIFEST_FORMAT = 'gyre-manifest/1';

export interface ManifestFile {
  name: string;     // relative to the model folder, no subfolders
  size: number;
  sha256: string;   // lowercase hex
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  files: ManifestFile[];
  architecture?: string;
  dtype?: string;
  /** int8 for `gyre quantize` output. */
  quantization?: string;
  /** What was merged in, for a LoRA upload. */
  adapter?: string;
}

/** Files a model folder needs; anything else (*.bin, *.pt, README, dot files) stays behind. */
export function isModelFile(name: string): boolean {
  if (name.startsWith('.') || name.includes('/') || name === MANIFEST_NAME) return false;
  return /\.(json|safetensors|jinja)$/.test(name) || name === 'tokenizer.model';
}

// Hashing runs on a worker thread: at ~1 GB/s per core it would otherwise take the event loop
// that drives the downloads (13.5 GB of shards is ~15 s of hashing).
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const hash = require('node:crypto').createHash('sha256');
const fd = fs.openSync(workerData, 'r');
const buf = Buffer.allocUnsafe(8 << 20);
for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
fs.closeSync(fd);
parentPort.postMessage(hash.digest('hex'));`;

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(HASH_WORKER, { eval: true, workerData: file });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => code && reject(new Error(`${file}: hashing stopped (exit ${code})`)));
  });
}

/** The manifest of a local folder's model files (hashes computed `parallel` at a time). */
export async function buildManifest(dir: string, extra: Omit<Manifest, 'format' | 'files'> = {},
                                    parallel = 4): Promise<Manifest> {
  const names = fs.readdirSync(dir).filter((n) => isModelFile(n) && fs.statSync(path.join(dir, n)).isFile()).sort();
  const files: ManifestFile[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      const file = path.join(dir, names[i]);
      files[i] = { name: names[i], size: fs.statSync(file).size, sha256: await sha256File(file) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, names.length) }, worker));
  return { format: MANIFEST_FORMAT, ...extra, files };
}

/** Parses and checks a manifest; `where` names it in errors. */
export function parseManifest(text: string, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== MANIFEST_FORMAT) throw new Error(`${where}: field 'format' must be '${MANIFEST_FORMAT}'`);
  if (!Array.isArray(m.files)) throw new Error(`${where}: field 'files' must be a list`);
  const seen = new Map<string, number>();
  m.files.forEach((f, i) => {
    const ok = f && typeof f.name === 'string' && isModelFile(f.name) && Number.isSafeInteger(f.size) && f.size >= 0 &&
      typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/.test(f.sha256);
    if (!ok) throw new Error(`${where}: files[${i}] must be {name, size, sha256} of a model file`);
    // Two entries would download into one path at once.
    const first = seen.get(f.name);
    if (first !== undefined) throw new Error(`${where}: files[${i}] repeats '${f.name}' (files[${first}])`);
    seen.set(f.name, i);
  });
  return m;
}

export function manifestKey(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** Checks a local folder against a manifest: sizes always, sha256 when `hashes`. */
export async function verifyFolder(dir: string, m: Manifest, hashes: boolean): Promise<void> {
  for (const f of m.files) {
    const file = path.join(dir, f.name);
    if (!fs.existsSync(file)) throw new Error(`${file}: missing (listed in ${MANIFEST_NAME})`);
    // Only a regular file inside the folder is hashed (a FIFO would never end).
    const { fd, size } = openModelFile(dir, f.name);
    fs.closeSync(fd);
    if (size !== f.size) throw new Error(`${file}: ${size} bytes, but ${MANIFEST_NAME} says ${f.size}`);
    if (hashes) {
      const sha = await sha256File(file);
      if (sha !== f.sha256) throw new Error(`${file}: sha256 ${sha} does not match ${MANIFEST_NAME} (${f.sha256})`);
    }
  }
}
