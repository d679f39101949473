// Node 22 LTS: on an older Node the AWS SDK's 9-line NodeVersionSupportWarning is
// turned off with its own switch, and Gyre says it once, in one line (needs `npm run build:ts`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

test('two S3 clients on this Node: no SDK warning, and at most one line from Gyre (one exactly below Node 22)', () => {
  const lib = path.join(ROOT, 'dist', 'model', 's3_client.js');
  if (!fs.existsSync(lib)) throw new Error('dist/ is not built: run `npm run build:ts`');
  const script = `const { makeS3Client } = require(${JSON.stringify(lib)});
    (async () => { (await makeS3Client()).destroy(); (await makeS3Client()).destroy(); })();`;
  const env: Record<string, string | undefined> = { ...process.env, AWS_REGION: 'us-east-1' };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env });
  expect(r.status).toBe(0);
  expect(r.stderr).not.toMatch(/NodeVersionSupportWarning|first week of January 2027/);
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  if (Number(process.versions.node.split('.')[0]) < 22) {
    expect(lines).toEqual([`gyre: Node ${process.version} is older than Node 22 LTS, which Gyre needs (and the AWS SDK from January 2027): please upgrade`]);
  } else {
    expect(lines).toEqual([]);
  }
});

test('the image, the engines field and the install script agree on Node 22 LTS', () => {
  const docker = fs.readFileSync(path.join(ROOT, 'container', 'Dockerfile'), 'utf8');
  expect(Number(/^ARG NODE_VERSION=(\d+)\./m.exec(docker)?.[1])).toBe(22);
  expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node).toBe('>=22');
  const old = spawnSync(path.join(ROOT, 'container', 'install-node.sh'), ['20.20.2'], { encoding: 'utf8' });
  expect(old.status).toBe(1);
  expect(old.stderr).toMatch(/older than 22 LTS/);
});
