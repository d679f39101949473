// An object swapped in S3 while it downloads, on a store that ignores If-Match (s3rver does, as do
// some S3-compatible stores), without a manifest: the ETag is checked again after the last range
// and a file mixed from two versions is discarded. A manifest that lists a file twice is refused.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { makeModel } from '../../src/model/make_model';
import { buildManifest, MANIFEST_NAME } from '../../src/model/manifest';
import { resolveModel } from '../../src/model/model_source';
import { downloadModel } from '../../src/model/s3_download';
import { FaultProxy, type S3Server, startS3rver, useEndpoint } from './s3_helpers';

const quiet = { progress: { log: false as const, bar: false } };
const MIB = 1 << 20;

let s3: S3Server;
let proxy: FaultProxy;
let tmp: string;
let model: string;
let direct: S3Client;
const savedEnv = { ...process.env };

async function put(key: string, body: Buffer | string): Promise<void> {
  await direct.send(new PutObjectCommand({ Bucket: 'models', Key: key, Body: body }));
}

beforeAll(async () => {
  s3 = await startS3rver(['models']);
  proxy = new FaultProxy(s3.port);
  useEndpoint(await proxy.start());
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-s3swap-'));
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache');
  model = path.join(tmp, 'model');
  makeModel({ shape: 'tiny', layers: 1, dtype: 'f32', seed: 5, out: model });
  direct = new S3Client({
    endpoint: `http://127.0.0.1:${s3.port}`, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // No manifest: nothing but the ETag ties the ranges of one file together.
  for (const name of fs.readdirSync(model)) await put(`plain/${name}`, fs.readFileSync(path.join(model, name)));
});
afterAll(async () => {
  process.env = savedEnv;
  direct.destroy();
  await proxy.close();
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('an object swapped mid-download (If-Match ignored) is discarded, not accepted as a mix of versions', async () => {
  const weights = fs.readFileSync(path.join(model, 'model.safetensors'));
  expect(weights.length).toBeGreaterThan(4 * MIB);
  const v2 = Buffer.from(weights);
  v2.fill(7, v2.length - 2 * MIB);   // same size, other bytes at the end
  let swapped = false;
  proxy.beforeRangedGet = async (rec, n) => {
    if (!swapped && /plain\/model\.safetensors/.test(rec.url) && n >= 3) {
      swapped = true;
      await put('plain/model.safetensors', v2);
    }
  };
  const dir = path.join(tmp, 'dl-swap');
  try {
    await expect(downloadModel('s3://models/plain/', dir, { ...quiet, partSize: MIB, concurrency: 1 })).rejects.toThrow(
      /^s3:\/\/models\/plain\/model\.safetensors: changed in S3 during the download \(ETag "[0-9a-f-]+" when listed, now "[0-9a-f-]+"\); the file was discarded$/);
  } finally {
    proxy.beforeRangedGet = undefined;
  }
  expect(swapped).toBe(true);
  expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
  // Through the cache: nothing is marked complete; the next resolve downloads v2 whole.
  let ranges = 0;
  proxy.beforeRangedGet = async (rec) => {
    if (/plain\/model\.safetensors/.test(rec.url) && ++ranges === 2) await put('plain/model.safetensors', weights);
  };
  try {
    await expect(resolveModel('s3://models/plain/', { ...quiet, partSize: MIB, concurrency: 1 })).rejects.toThrow(/changed in S3 during the download/);
  } finally {
    proxy.beforeRangedGet = undefined;
  }
  const resolved = await resolveModel('s3://models/plain/', { ...quiet, partSize: MIB, concurrency: 1 });
  expect(fs.readFileSync(path.join(resolved.dir, 'model.safetensors')).equals(weights)).toBe(true);
});

test('a manifest that lists one file twice is refused', async () => {
  for (const name of fs.readdirSync(model)) await put(`dup/${name}`, fs.readFileSync(path.join(model, name)));
  const m = await buildManifest(model);
  const weights = m.files.findIndex((f) => f.name === 'model.safetensors');
  m.files.push(m.files[weights]);
  await put(`dup/${MANIFEST_NAME}`, JSON.stringify(m));
  await expect(downloadModel('s3://models/dup/', path.join(tmp, 'dl-dup'), quiet)).rejects.toThrow(
    `s3://models/dup/${MANIFEST_NAME}: files[${m.files.length - 1}] repeats 'model.safetensors' (files[${weights}])`);
});
