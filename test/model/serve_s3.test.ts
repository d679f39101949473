// gyre serve with GYRE_MODEL=s3://...: /ping is 503 while the files download, 200 once loaded,
// and stays 503 with the reason when a file fails its manifest check.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { uploadModel } from '../../src/model/s3_upload';
import { get, post, startTestServer, type TestServer } from '../server/helpers';
import { FaultProxy, type S3Server, startS3rver, useEndpoint } from './s3_helpers';

const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo');
const quiet = { progress: { log: false as const, bar: false } };

let s3: S3Server;
let proxy: FaultProxy;
let tmp: string;
const servers: TestServer[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startS3rver(['models']);
  proxy = new FaultProxy(s3.port);
  useEndpoint(await proxy.start());
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-serve-s3-'));
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache');
  await uploadModel(DEMO, 's3://models/demo/', quiet);
  await uploadModel(DEMO, 's3://models/altered/', quiet);
  const bytes = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  bytes[bytes.length - 1] ^= 1;
  const direct = new S3Client({
    endpoint: `http://127.0.0.1:${s3.port}`, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await direct.send(new PutObjectCommand({ Bucket: 'models', Key: 'altered/model.safetensors', Body: bytes }));
  direct.destroy();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  process.env = savedEnv;
  await proxy.close();
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('/ping is 503 while the model downloads, then 200 and it generates', async () => {
  proxy.rate = 2e6;   // 2 MB/s per response: the 4 MB weights take about two seconds
  const t = await startTestServer({ model: 's3://models/demo/', modelFrom: 'GYRE_MODEL' }, {}, false);
  servers.push(t);
  const during = await get(`${t.url}/ping`);
  expect(during.status).toBe(503);
  expect(during.json.error).toMatch(/downloading from s3:\/\/models\/demo\//);
  await t.server.loaded;
  proxy.rate = 0;
  expect((await get(`${t.url}/ping`)).status).toBe(200);
  const inv = await post(`${t.url}/invocations`, { inputs: 'Hello', parameters: { max_new_tokens: 3 } });
  expect(inv.status).toBe(200);
  expect(t.logs.some((l) => l.event === 'download' && l.done === true && l.ok === true)).toBe(true);
});

test('an object altered in S3 is never served: /ping stays 503 with the manifest error', async () => {
  // The same manifest as demo/, so a fresh cache: the good copy from the test above would be a hit.
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache2');
  const t = await startTestServer({ model: 's3://models/altered/', modelFrom: 'GYRE_MODEL' });
  servers.push(t);
  const ping = await get(`${t.url}/ping`);
  expect(ping.status).toBe(503);
  expect(ping.json.error).toMatch(
    /^the model failed to load: GYRE_MODEL=s3:\/\/models\/altered\/model\.safetensors: sha256 [0-9a-f]{64} does not match gyre-manifest\.json/);
  expect((await post(`${t.url}/invocations`, { inputs: 'Hi' })).status).toBe(503);
  await new Promise((r) => setTimeout(r, 200));
  expect((await get(`${t.url}/ping`)).status).toBe(503);
});
