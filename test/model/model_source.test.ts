// The resolver's local sources: a folder, and /opt/ml/model (under GYRE_SAGEMAKER_ROOT) where
// SageMaker copies uncompressed model data; a manifest there catches truncated files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { buildManifest, MANIFEST_NAME } from '../../src/model/manifest';
import { resolveModel } from '../../src/model/model_source';
import { captureOutput } from './s3_helpers';

const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo');
let root: string;
const savedEnv = { ...process.env };
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-opt-ml-'));
  const dir = path.join(root, 'model');
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(DEMO)) fs.copyFileSync(path.join(DEMO, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, MANIFEST_NAME), JSON.stringify(await buildManifest(dir)));
  process.env.GYRE_SAGEMAKER_ROOT = root;
});
afterAll(() => { process.env = savedEnv; fs.rmSync(root, { recursive: true, force: true }); });
afterEach(() => jest.restoreAllMocks());

test('no spec: /opt/ml/model, checked against its manifest', async () => {
  const r = await resolveModel(undefined);
  expect(r).toMatchObject({ dir: path.join(root, 'model'), source: 'sagemaker' });
  expect(r.manifest?.files.map((f) => f.name)).toContain('model.safetensors');
  const io = captureOutput();
  expect(await main(['node', 'gyre', 'validate'])).toBe(0);
  expect(io.stdout()).toMatch(new RegExp(`^${path.join(root, 'model')}: OK`));
});

test('a local folder is used in place; a missing one is named', async () => {
  expect(await resolveModel(DEMO)).toMatchObject({ dir: DEMO, source: 'local', manifest: undefined });
  await expect(resolveModel('/nonexistent/model')).rejects.toThrow('/nonexistent/model: not a folder');
  await expect(resolveModel(undefined, { sagemakerRoot: '/nonexistent' })).rejects.toThrow(
    'no model: give --model (a folder or s3://bucket/prefix/), set GYRE_MODEL, or put the model under /nonexistent/model');
});

test('a truncated file and a changed file in /opt/ml/model are caught (size, then sha256)', async () => {
  const file = path.join(root, 'model', 'tokenizer.json');
  const good = fs.readFileSync(file);
  fs.writeFileSync(file, good.subarray(0, good.length - 10));
  await expect(resolveModel(undefined)).rejects.toThrow(`${file}: ${good.length - 10} bytes, but ${MANIFEST_NAME} says ${good.length}`);
  const changed = Buffer.from(good);
  changed[100] ^= 1;
  fs.writeFileSync(file, changed);
  await expect(resolveModel(undefined)).rejects.toThrow(new RegExp(`${file}: sha256 [0-9a-f]{64} does not match`));
  await expect(resolveModel(undefined, { verifyHashes: false })).resolves.toMatchObject({ source: 'sagemaker' });
  fs.writeFileSync(file, good);
});

test('/opt/ml/model named explicitly (as the server does) is still SageMaker\'s copy', async () => {
  expect(await resolveModel(path.join(root, 'model'))).toMatchObject({ source: 'sagemaker' });
});

test('a local folder is resolved without loading the AWS SDK (the CLI starts fast)', () => {
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  const dist = path.join(__dirname, '..', '..', 'dist', 'model', 'model_source.js');
  const script = `require(${JSON.stringify(dist)}).resolveModel(${JSON.stringify(path.join(root, 'model'))})
    .then(() => console.log(Object.keys(require.cache).filter((f) => f.includes('@aws-sdk')).length))`;
  expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim()).toBe('0');
});
