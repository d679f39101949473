// Faults between us and S3, injected by a proxy in front of s3rver: dropped connections,
// altered objects, missing keys and buckets.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { makeModel } from '../../src/model/make_model';
import { resolveModel } from '../../src/model/model_source';
import { downloadModel } from '../../src/model/s3_download';
import { uploadModel } from '../../src/model/s3_upload';
import { FaultProxy, filesEqual, type S3Server, startS3rver, useEndpoint } from './s3_helpers';

const quiet = { progress: { log: false as const, bar: false } };
const MIB = 1 << 20;

let s3: S3Server;
let proxy: FaultProxy;
let tmp: string;
let model: string;       // tiny f32 model: model.safetensors is ~8.5 MB
let direct: S3Client;    // straight to s3rver, to change the store behind the proxy's back
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startS3rver(['models']);
  proxy = new FaultProxy(s3.port);
  useEndpoint(await proxy.start());
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-s3faults-'));
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache');
  model = path.join(tmp, 'model');
  makeModel({ shape: 'tiny', layers: 1, dtype: 'f32', seed: 5, out: model });
  direct = new S3Client({
    endpoint: `http://127.0.0.1:${s3.port}`, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await uploadModel(model, 's3://models/m/', { partSize: 5 * MIB, concurrency: 4, ...quiet });
});
afterAll(async () => {
  process.env = savedEnv;
  direct.destroy();
  await proxy.close();
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  proxy.requests.length = 0;
  proxy.cutRanges = 0;
  proxy.notFound = undefined;
  proxy.changed = undefined;
});

test('the upload went up in parts (multipart) through the same endpoint settings', async () => {
  await uploadModel(model, 's3://models/m2/', { partSize: 5 * MIB, concurrency: 4, ...quiet });
  const parts = proxy.requests.filter((r) => r.method === 'PUT' && /model\.safetensors\?.*partNumber=/.test(r.url));
  expect(parts.length).toBe(2);
  expect(proxy.requests.at(-1)?.url).toMatch(/gyre-manifest\.json/);   // the manifest goes last
});

test('connections dropped mid-range are retried from where they broke; files are byte-identical', async () => {
  proxy.cutRanges = 3;
  proxy.cutAfter = 300_000;
  const dir = path.join(tmp, 'dl-drop');
  const r = await downloadModel('s3://models/m/', dir, { partSize: MIB, concurrency: 4, retryBaseMs: 5, ...quiet });
  expect(r.retries).toBe(3);
  for (const f of fs.readdirSync(model)) expect(filesEqual(path.join(dir, f), path.join(model, f))).toBe(true);
  // Each retry asks only for the rest of its part: same end, a start inside the part.
  const ranges = proxy.requests.filter((q) => q.range).map((q) => q.range!.match(/bytes=(\d+)-(\d+)/)!.slice(1).map(Number));
  const resumed = ranges.filter(([start]) => start % MIB !== 0);
  expect(resumed.length).toBe(3);
  for (const [start, end] of resumed) expect(ranges.some(([s, e]) => e === end && s === start - (start % MIB))).toBe(true);
  // Bytes the store sent: the files once, plus at most what was in flight when the line dropped
  // (a whole-part refetch would add 3 x 300,000).
  const served = proxy.requests.filter((q) => q.range).reduce((n, q) => n + q.bytes, 0);
  const size = fs.readdirSync(model).reduce((n, f) => n + fs.statSync(path.join(model, f)).size, 0);
  expect(served - size).toBeLessThan(3 * 64 * 1024);
});

test('part size and concurrency come from GYRE_S3_PART_MIB / GYRE_S3_CONCURRENCY', async () => {
  process.env.GYRE_S3_PART_MIB = '2';
  process.env.GYRE_S3_CONCURRENCY = '3';
  proxy.peak = 0;
  try {
    await downloadModel('s3://models/m/', path.join(tmp, 'dl-env'), quiet);
  } finally {
    delete process.env.GYRE_S3_PART_MIB;
    delete process.env.GYRE_S3_CONCURRENCY;
  }
  const size = fs.statSync(path.join(model, 'model.safetensors')).size;
  const gets = proxy.requests.filter((q) => q.range && q.url.includes('model.safetensors'));
  expect(gets.map((q) => q.range)).toEqual(Array.from({ length: Math.ceil(size / (2 * MIB)) },
    (_, i) => `bytes=${i * 2 * MIB}-${Math.min((i + 1) * 2 * MIB, size) - 1}`));
  expect(proxy.peak).toBe(3);
  process.env.GYRE_S3_CONCURRENCY = 'many';
  await expect(downloadModel('s3://models/m/', path.join(tmp, 'dl-env2'), quiet)).rejects.toThrow('GYRE_S3_CONCURRENCY=many: expected a positive integer');
  delete process.env.GYRE_S3_CONCURRENCY;
});

test('a connection that keeps dropping fails after the attempts, naming the key and range', async () => {
  proxy.cutRanges = 100;
  await expect(downloadModel('s3://models/m/', path.join(tmp, 'dl-fail'), {
    partSize: MIB, concurrency: 2, maxAttempts: 3, retryBaseMs: 1, ...quiet,
  })).rejects.toThrow(/s3:\/\/models\/m\/[\w.]+: bytes \d+-\d+ failed 3 times/);
});

test('an object altered in the store fails the manifest check and nothing is kept', async () => {
  await uploadModel(model, 's3://models/altered/', { partSize: 5 * MIB, ...quiet });
  const bytes = fs.readFileSync(path.join(model, 'model.safetensors'));
  bytes[bytes.length - 7] ^= 0x40;   // same size, one bit flipped
  await direct.send(new PutObjectCommand({ Bucket: 'models', Key: 'altered/model.safetensors', Body: bytes }));
  await expect(resolveModel('s3://models/altered/', quiet)).rejects.toThrow(
    /s3:\/\/models\/altered\/model\.safetensors: sha256 [0-9a-f]{64} does not match gyre-manifest\.json/);
  expect(fs.readdirSync(path.join(tmp, 'cache')).filter((d) => !fs.existsSync(path.join(tmp, 'cache', d, '.gyre-complete')))).toEqual([]);
});

test('a file the manifest lists but S3 lacks is named', async () => {
  await uploadModel(model, 's3://models/gone/', quiet);
  await direct.send(new DeleteObjectCommand({ Bucket: 'models', Key: 'gone/tokenizer.json' }));
  await expect(resolveModel('s3://models/gone/', quiet)).rejects.toThrow(
    's3://models/gone/tokenizer.json: missing in S3 (listed in gyre-manifest.json)');
});

test('a key that vanishes between listing and GET is named (404 NoSuchKey)', async () => {
  proxy.notFound = /m\/config\.json/;
  await expect(downloadModel('s3://models/m/', path.join(tmp, 'dl-404'), quiet)).rejects.toThrow(
    's3://models/m/config.json: not found (NoSuchKey)');
});

test('an object replaced between listing and GET is refused (If-Match with the listed ETag)', async () => {
  proxy.changed = /m\/model\.safetensors/;
  await expect(downloadModel('s3://models/m/', path.join(tmp, 'dl-412'), quiet)).rejects.toThrow(
    /^s3:\/\/models\/m\/model\.safetensors: changed in S3 during the download \(no longer ETag "[0-9a-f-]+"\)$/);
});

test('a prefix without a model and a missing bucket each get a clear error', async () => {
  await direct.send(new PutObjectCommand({ Bucket: 'models', Key: 'notes/README.md', Body: 'hi' }));
  await expect(resolveModel('s3://models/notes/', quiet)).rejects.toThrow(
    's3://models/notes/config.json: not found (no model folder at s3://models/notes/)');
  await expect(resolveModel('s3://no-such-bucket/llama/', quiet)).rejects.toThrow(
    "s3://no-such-bucket/llama/: the bucket 'no-such-bucket' does not exist (NoSuchBucket)");
});
