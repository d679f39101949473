// Upload with `gyre upload`, serve from the s3:// URI, and get the local folder's logits bit for
// bit (needs the built addon). Real s3rver, real SDK clients, configured through the environment.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { makeModel } from '../../src/model/make_model';
import { MANIFEST_NAME, manifestKey } from '../../src/model/manifest';
import { resolveModel } from '../../src/model/model_source';
import { writeSafetensors } from '../../src/model/safetensors';
import { uploadModel } from '../../src/model/s3_upload';
import { captureOutput, filesEqual, type S3Server, startS3rver, useEndpoint } from './s3_helpers';

const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo');
const IDS = '1,450,4086,338,263,1243,29889';
const quiet = { progress: { log: false as const, bar: false } };

let s3: S3Server;
let tmp: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startS3rver(['models']);
  useEndpoint(s3.port);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-s3rt-'));
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache');
});
afterAll(async () => {
  process.env = savedEnv;
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => jest.restoreAllMocks());

const gyre = (...args: string[]) => main(['node', 'gyre', ...args]);

async function logits(model: string, name: string): Promise<string> {
  const out = path.join(tmp, `${name}.safetensors`);
  const code = await gyre('logits', '--model', model, '--ids', IDS, '--out', out, '--backend', 'cpu');
  expect(code).toBe(0);
  return out;
}

test('gyre upload, then gyre logits from the s3:// URI equals the local folder bit for bit', async () => {
  const io = captureOutput();
  expect(await gyre('upload', '--model', DEMO, '--to', 's3://models/demo', '--part-size', '5')).toBe(0);
  expect(io.stdout()).toBe('s3://models/demo/\n');
  expect(filesEqual(await logits('s3://models/demo/', 'demo-s3'), await logits(DEMO, 'demo-local'))).toBe(true);
  // The progress lines are JSON with bytes, MB/s and ETA.
  const last = io.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((e) => e.event === 'download' && e.done);
  expect(last).toMatchObject({ ok: true, bytes: last.total_bytes });
  expect(last.total_bytes).toBeGreaterThan(5e6);
});

test('a sharded bf16 folder round-trips through S3 with identical files and logits', async () => {
  const dir = path.join(tmp, 'bf16');
  makeModel({ shape: 'tiny', dtype: 'bf16', seed: 3, out: dir, maxSingleFileBytes: 1 << 20, shardBytes: 64 << 10 });
  const shards = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors'));
  expect(shards.length).toBeGreaterThan(2);
  expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(true);

  const up = await uploadModel(dir, 's3://models/tiny-bf16/', { partSize: 5 << 20, ...quiet });
  expect(up.uri).toBe('s3://models/tiny-bf16/');
  const got = await resolveModel(up.uri, { partSize: 256 << 10, concurrency: 8, ...quiet });
  expect(got.download?.files.length).toBe(up.manifest.files.length);
  for (const f of up.manifest.files) expect(filesEqual(path.join(got.dir, f.name), path.join(dir, f.name))).toBe(true);
  captureOutput();
  expect(filesEqual(await logits(up.uri, 'bf16-s3'), await logits(dir, 'bf16-local'))).toBe(true);
});

test('the download cache is keyed by content: new bytes at the same URI are downloaded again', async () => {
  const a = path.join(tmp, 'seed1'), b = path.join(tmp, 'seed2');
  makeModel({ shape: 'tiny', layers: 1, dtype: 'f16', seed: 1, out: a });
  makeModel({ shape: 'tiny', layers: 1, dtype: 'f16', seed: 2, out: b });
  const uri = 's3://models/same-uri/';
  await uploadModel(a, uri, quiet);
  const first = await resolveModel(uri, quiet);
  const again = await resolveModel(uri, quiet);
  expect(again).toMatchObject({ dir: first.dir, cached: true });
  expect(path.basename(first.dir)).toBe(manifestKey(fs.readFileSync(path.join(first.dir, MANIFEST_NAME), 'utf8')));

  await uploadModel(b, uri, quiet);
  const second = await resolveModel(uri, quiet);
  expect(second.cached).toBeUndefined();
  expect(second.dir).not.toBe(first.dir);
  expect(filesEqual(path.join(second.dir, 'model.safetensors'), path.join(b, 'model.safetensors'))).toBe(true);
});

test('gyre validate accepts an s3:// URI and reports the A10G KV-cache budget', async () => {
  const io = captureOutput();
  expect(await gyre('validate', '--model', 's3://models/demo/', '--json')).toBe(0);
  const report = JSON.parse(io.stdout());
  expect(report).toMatchObject({ ok: true, architecture: 'LlamaForCausalLM', kvBytesPerToken: 2 * 2 * 2 * 16 * 2 });
});

test('gyre upload refuses an invalid folder and uploads nothing', async () => {
  const bad = path.join(tmp, 'bad');
  fs.mkdirSync(bad);
  for (const f of fs.readdirSync(DEMO)) fs.copyFileSync(path.join(DEMO, f), path.join(bad, f));
  const config = JSON.parse(fs.readFileSync(path.join(bad, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
  const io = captureOutput();
  expect(await gyre('upload', '--model', bad, '--to', 's3://models/bad/')).toBe(1);
  expect(io.stderr()).toMatch(/refusing to upload an invalid model[\s\S]*model\.layers\.2\.input_layernorm\.weight' is missing/);
  await expect(resolveModel('s3://models/bad/', quiet)).rejects.toThrow(/s3:\/\/models\/bad\/: no objects under this prefix/);
});

test('gyre upload --adapter uploads the merged model: logits equal a local gyre merge', async () => {
  const adapter = path.join(tmp, 'adapter');
  fs.mkdirSync(adapter);
  const r = 2, name = 'base_model.model.model.layers.0.self_attn.q_proj';
  writeSafetensors(path.join(adapter, 'adapter_model.safetensors'), [
    { name: `${name}.lora_A.weight`, dtype: 'F32', shape: [r, 64], data: Float32Array.from({ length: r * 64 }, (_, i) => Math.sin(i) * 0.1) },
    { name: `${name}.lora_B.weight`, dtype: 'F32', shape: [64, r], data: Float32Array.from({ length: 64 * r }, (_, i) => Math.cos(i) * 0.1) },
  ]);
  fs.writeFileSync(path.join(adapter, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 4, target_modules: ['q_proj'] }));
  const io = captureOutput();
  expect(await gyre('upload', '--model', DEMO, '--adapter', adapter, '--to', 's3://models/demo-ft/')).toBe(0);
  expect(io.stdout()).toBe('s3://models/demo-ft/\n');
  const merged = path.join(tmp, 'demo-ft');
  expect(await gyre('merge', '--model', DEMO, '--adapter', adapter, '--out', merged)).toBe(0);
  const fromS3 = await logits('s3://models/demo-ft/', 'ft-s3');
  expect(filesEqual(fromS3, await logits(merged, 'ft-local'))).toBe(true);
  expect(filesEqual(fromS3, path.join(tmp, 'demo-local.safetensors'))).toBe(false);   // the adapter changed the model
  const { dir } = await resolveModel('s3://models/demo-ft/', quiet);
  expect(JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_NAME), 'utf8')).adapter).toBe('adapter');
});
