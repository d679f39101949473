// Static checks of container/Dockerfile and .dockerignore (no Docker daemon here, so the image
// itself is never built in CI): what SageMaker needs from the image, and that every COPY from
// the build context names something that exists and that .dockerignore lets in.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'container', 'Dockerfile'), 'utf8');

interface Instruction { op: string; args: string; stage: number }

/** Instructions with continuation lines joined and comments dropped; stage = index of its FROM. */
function parse(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    while (/\\\s*$/.test(line) && i + 1 < lines.length) line = line.replace(/\\\s*$/, ' ') + lines[++i];
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = m[1].toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2].trim(), stage });
  }
  return out;
}

/** .dockerignore semantics (moby patternmatcher): a pattern matches a path or any folder above
 *  it; `**` spans folders; `!` re-includes; the last matching pattern wins. */
function dockerignored(patterns: string[], rel: string): boolean {
  const glob = (p: string) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  const toRegex = (p: string) => new RegExp('^' + p.split('**/').map((a) => a.split('**').map(glob).join('.*')).join('(?:.*/)?') + '$');
  const parts = rel.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const re = toRegex(path.posix.normalize(negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, ''));
    if (candidates.some((c) => re.test(c))) excluded = !negate;
  }
  return excluded;
}

const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n')
  .map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

/** Files of the repository under rel (a file or a folder), build outputs included. */
function filesUnder(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (!fs.statSync(abs).isDirectory()) return [rel];
  return fs.readdirSync(abs).flatMap((n) => filesUnder(path.posix.join(rel, n)));
}

const ins = parse(dockerfile);
const lastStage = Math.max(...ins.map((i) => i.stage));

test('the build stage is CUDA 12.4 devel and the run stage CUDA 12.4 runtime (driver 550 AMI)', () => {
  const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args);
  expect(froms).toHaveLength(2);
  expect(froms[0]).toMatch(/^nvidia\/cuda:12\.4\.\d+-devel-ubuntu22\.04 AS build$/i);
  expect(froms[1]).toMatch(/^nvidia\/cuda:12\.4\.\d+-runtime-ubuntu22\.04$/);
  // The reason for 12.4 is written where the version is chosen.
  expect(dockerfile).toMatch(/al2-ami-sagemaker-inference-gpu-3-1/);
  expect(dockerfile).toMatch(/driver\s+550/);
  expect(dockerfile).toMatch(/driver\s+470/);
});

test('the run stage has an exec-form ENTRYPOINT to container/serve, CMD serve, and the port LABEL', () => {
  const run = ins.filter((i) => i.stage === lastStage);
  const entry = run.filter((i) => i.op === 'ENTRYPOINT');
  expect(entry).toHaveLength(1);
  const argv = JSON.parse(entry[0].args) as string[];  // exec form is a JSON array
  expect(argv).toEqual(['/opt/gyre/container/serve']);
  expect(JSON.parse(run.find((i) => i.op === 'CMD')!.args)).toEqual(['serve']);
  const copied = run.find((i) => i.op === 'COPY' && i.args.endsWith(' container/serve'));
  expect(copied?.args).toBe('container/serve container/serve');
  expect(run.find((i) => i.op === 'WORKDIR')?.args).toBe('/opt/gyre');
  expect(run.some((i) => i.op === 'LABEL' && i.args === 'com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true')).toBe(true);
});

test('the build stage calls container/build.sh, requiring the CUDA backend', () => {
  const runs = ins.filter((i) => i.stage === 0 && i.op === 'RUN').map((i) => i.args);
  expect(runs).toContain('container/build.sh deps');
  expect(runs).toContain('GYRE_REQUIRE_CUDA=1 container/build.sh native ts check prune');
});

test('every COPY source from the context exists and is let in by .dockerignore', () => {
  const copies = ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
  expect(copies.length).toBeGreaterThan(5);
  for (const c of copies) {
    const sources = c.args.split(/\s+/).slice(0, -1);
    for (const src of sources) {
      const rel = src.replace(/\/+$/, '');
      expect({ src, exists: fs.existsSync(path.join(ROOT, rel)) }).toEqual({ src, exists: true });
      const files = filesUnder(rel).filter((f) => !dockerignored(ignore, f));
      expect({ src, sent: files.length > 0 }).toEqual({ src, sent: true });
      expect({ src, ignored: dockerignored(ignore, rel) }).toEqual({ src, ignored: false });
    }
  }
  for (const f of ['native/CMakeLists.txt', 'src/cli/main.ts', 'package-lock.json', 'models/chat-templates/llama-2-chat.jinja']) {
    expect({ f, ignored: dockerignored(ignore, f) }).toEqual({ f, ignored: false });
  }
});

test('.dockerignore keeps out dependencies, build outputs, tests, fixtures and models', () => {
  for (const f of ['node_modules/express/package.json', 'infra/node_modules/x', 'dist/cli/main.js',
    'native/build/Release/gyre.node', 'native/build-lead/CMakeCache.txt', 'native/test/forward_test.cc',
    'test/fixtures/reference/llama-mha/model.safetensors', 'models/demo/model.safetensors', 'bench/out/x.json', '.git/HEAD']) {
    expect({ f, ignored: dockerignored(ignore, f) }).toEqual({ f, ignored: true });
  }
});

test('the scripts the image runs are executable and parse', () => {
  for (const s of ['container/serve', 'container/build.sh', 'container/install-node.sh']) {
    fs.accessSync(path.join(ROOT, s), fs.constants.X_OK);
    execFileSync('bash', ['-n', path.join(ROOT, s)]);
  }
});
