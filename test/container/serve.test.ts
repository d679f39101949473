// container/serve run natively, as `docker run IMAGE serve` runs it in the image: the model from
// $GYRE_SAGEMAKER_ROOT/model (SageMaker's /opt/ml/model), the port from SAGEMAKER_BIND_TO_PORT.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { ROOT, demoModel, freePort, start, stop, waitFor200 } from './helpers';

const SERVE = path.join(ROOT, 'container', 'serve');
// Settings a developer's shell may carry that would change what the script picks.
const CLEAN = { GYRE_MODEL: undefined, HF_MODEL_ID: undefined, GYRE_BACKEND: 'cpu' };

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-container-'));
  demoModel(path.join(tmp, 'ml', 'model'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('`serve` takes the model from GYRE_SAGEMAKER_ROOT/model and the port from SAGEMAKER_BIND_TO_PORT', async () => {
  const port = await freePort();
  const proc = start(SERVE, ['serve'], { ...CLEAN, GYRE_SAGEMAKER_ROOT: path.join(tmp, 'ml'), SAGEMAKER_BIND_TO_PORT: String(port) });
  try {
    const url = `http://127.0.0.1:${port}`;
    const seen = await waitFor200(`${url}/ping`, 60_000, proc);
    expect(seen.every((s) => s === 0 || s === 503 || s === 200)).toBe(true);
    const res = await fetch(`${url}/invocations`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: 'Hello', parameters: { max_new_tokens: 4, seed: 1 } }),
    });
    expect(res.status).toBe(200);
    const body = await res.json() as { generated_text: string }[];
    expect(typeof body[0].generated_text).toBe('string');
    // exec: SIGTERM reaches node itself, which drains and exits, closing the port.
    expect(await stop(proc)).toBe(0);
    expect(await fetch(`${url}/ping`).then((r) => r.status, () => 0)).toBe(0);
  } finally {
    await stop(proc);
  }
});

test('GYRE_MODEL wins over GYRE_SAGEMAKER_ROOT/model', async () => {
  const port = await freePort();
  const missing = path.join(tmp, 'no-such-model');
  const proc = start(SERVE, ['serve'], {
    ...CLEAN, GYRE_MODEL: missing, GYRE_SAGEMAKER_ROOT: path.join(tmp, 'ml'), SAGEMAKER_BIND_TO_PORT: String(port),
  });
  try {
    // A failed load keeps the server up with /ping 503 naming the folder (or ends the process).
    let ping: { status: number; text: string } | undefined;
    for (let i = 0; i < 100 && proc.child.exitCode === null; i++) {
      ping = await fetch(`http://127.0.0.1:${port}/ping`).then(async (r) => ({ status: r.status, text: await r.text() }), () => undefined);
      if (ping && /no-such-model/.test(ping.text)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const said = proc.child.exitCode === null ? `${ping?.status} ${ping?.text}` : proc.output();
    expect(said).toMatch(/no-such-model/);
    expect(ping?.status).not.toBe(200);
  } finally {
    await stop(proc);
  }
});

test('an unknown first argument fails at once, saying the entry point takes `serve`', () => {
  for (const args of [['train'], ['bogus'], []]) {
    const r = spawnSync(SERVE, args, { encoding: 'utf8', env: { ...process.env, GYRE_SAGEMAKER_ROOT: tmp } });
    expect({ args, status: r.status }).toEqual({ args, status: 64 });
    expect(r.stderr).toMatch(/serve/);
    expect(r.stdout).toBe('');
  }
});

test('container/build.sh refuses an unknown step before doing anything', () => {
  const r = spawnSync(path.join(ROOT, 'container', 'build.sh'), ['native', 'bogus'], { encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/unknown step 'bogus'/);
  expect(r.stdout).toBe('');
});

// The full native build takes minutes on 2 cores: opt in with GYRE_TEST_CONTAINER_BUILD=1.
(process.env.GYRE_TEST_CONTAINER_BUILD === '1' ? test : test.skip)('container/build.sh builds an addon that loads', () => {
  const dir = path.join(tmp, 'native-build');
  const out = execFileSync(path.join(ROOT, 'container', 'build.sh'), ['native', 'check'], {
    encoding: 'utf8', env: { ...process.env, GYRE_NATIVE_BUILD_DIR: dir }, timeout: 600_000,
  });
  expect(out).toMatch(/gyre: CUDA backend (ON|OFF)/);
  expect(fs.existsSync(path.join(dir, 'Release', 'gyre.node'))).toBe(true);
}, 600_000);
