// A bring-your-own model folder is untrusted input: `gyre validate` refuses what would
// take a server down (templates and tokenizer regexes that exceed their limits, paths out of the
// folder, FIFOs, unbounded counts, overflowing shapes), names the file and field, never quotes a
// file's bytes, and what it accepts the engine loads. Folders are crafted here, in a temp dir.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, type TensorSpec, writeSafetensors } from '../../src/model/safetensors';
import { validateModel } from '../../src/model/validate';

const ROOT = path.resolve(__dirname, '..', '..');
const DEMO = path.join(ROOT, 'models', 'demo');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const LIMITS = { textLimits: { timeoutMs: 2000, memoryMb: 128 } };

let tmp: string;
let n = 0;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-hostile-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function copy(): string {
  const dir = path.join(tmp, `m${n++}`);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(DEMO)) fs.copyFileSync(path.join(DEMO, f), path.join(dir, f));
  return dir;
}

function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(j);
  fs.writeFileSync(file, JSON.stringify(j));
}

/** Splits model.safetensors into two shards with an index; returns the index path. */
function shard(dir: string): string {
  const all = [...readSafetensors(path.join(dir, 'model.safetensors'))].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
  fs.rmSync(path.join(dir, 'model.safetensors'));
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const half = Math.ceil(all.length / 2);
  writeSafetensors(path.join(dir, files[0]), all.slice(0, half));
  writeSafetensors(path.join(dir, files[1]), all.slice(half));
  const index = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(index, JSON.stringify({ weight_map: Object.fromEntries(all.map((s, i) => [s.name, files[i < half ? 0 : 1]])) }));
  return index;
}

/** A safetensors file whose header is `header` and whose data is `dataBytes` zero bytes. */
function rawSafetensors(file: string, header: unknown, dataBytes = 0): void {
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8);
  fs.writeFileSync(file, out);
}

/** gyre validate in a child process: a hang is a timeout here, not a stuck suite. */
function validateCli(dir: string, extra: string[] = []): { status: number | null; out: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, 'validate', '--model', dir, ...extra], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, GYRE_TEXT_TIMEOUT_MS: '2000' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

const noFileBytes = (text: string) => {
  expect(text).not.toMatch(/root:/);
  expect(text).not.toMatch(/3475222254926655500/);
};

describe('chat templates and tokenizer regexes are run under the serving limits', () => {
  test('a template that loops a billion times is refused (it passed before)', async () => {
    const dir = copy();
    editJson(path.join(dir, 'tokenizer_config.json'), (j) => { j.chat_template = '{% for i in range(1000000000) %}x{% endfor %}'; });
    const r = await validateModel(dir, LIMITS);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/tokenizer_config\.json: field 'chat_template': rendering a 3-message conversation: .*(did not finish within 2000 ms \(GYRE_TEXT_TIMEOUT_MS\)|heap \(GYRE_TEXT_MEMORY_MB\))/);
  });

  test('a template that builds a huge list is refused by the memory limit', async () => {
    const dir = copy();
    editJson(path.join(dir, 'tokenizer_config.json'), (j) => {
      j.chat_template = '{% set ns = namespace(l=[1, 2, 3, 4, 5, 6, 7, 8]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}';
    });
    const r = await validateModel(dir, { textLimits: { timeoutMs: 30_000, memoryMb: 64 } });
    expect(r.errors.join('\n')).toMatch(/field 'chat_template': rendering .*(heap \(GYRE_TEXT_MEMORY_MB\)|stopped its worker)/);
  });

  test.each([
    ['pre-tokenizer Split (a+)+$', (t: Record<string, unknown>) => {
      t.pre_tokenizer = { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false };
    }],
    ['normalizer Replace (a|aa)+$', (t: Record<string, unknown>) => {
      t.normalizer = { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '(a|aa)+$' }, content: 'x' }] };
    }],
  ])('a tokenizer whose %s backtracks is refused (it passed before)', async (_, edit) => {
    const dir = copy();
    editJson(path.join(dir, 'tokenizer.json'), edit);
    const r = await validateModel(dir, LIMITS);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/tokenizer\.json: tokenizing the probe "aa" x 48 \+ "!": the tokenizer did not finish within 2000 ms/);
  });

  test('a regex in the decoder (run on the event loop for every streamed token) is refused by validate and the engine', async () => {
    const dir = copy();
    editJson(path.join(dir, 'tokenizer.json'), (t) => {
      (t.decoder as { decoders: unknown[] }).decoders.unshift({ type: 'Replace', pattern: { Regex: '(a+)+$' }, content: 'x' });
    });
    const r = await validateModel(dir, LIMITS);
    expect(r.errors).toContain(`${path.join(dir, 'tokenizer.json')}: field 'decoder' uses the regex "(a+)+$"; decoding runs on the ` +
      'server\'s event loop, where a regex is not bounded, so only String patterns are accepted there');
    const { Tokenizer } = await import('../../src/engine/tokenizer');
    expect(() => Tokenizer.fromModelDir(dir)).toThrow(/field 'decoder' uses the regex/);
  });

  test.each([['[]'], ['{}']])('tokenizer.json %s is refused by validate, as the engine refuses it', async (text) => {
    const dir = copy();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), text);
    const r = await validateModel(dir, LIMITS);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/tokenizer\.json: (field 'model' is missing|expected a JSON object)/);
  });
});

describe('only regular files inside the folder are opened; no message quotes a file', () => {
  test('an index entry that leaves the folder is refused and never opened', async () => {
    const dir = copy();
    const index = shard(dir);
    editJson(index, (j) => { (j.weight_map as Record<string, string>)['model.norm.weight'] = '../../../../../../../../etc/passwd'; });
    const r = await validateModel(dir, LIMITS);
    expect(r.errors).toContain(`${index}: weight_map['model.norm.weight'] must be a file name in the model folder`);
    noFileBytes(r.errors.join('\n'));
    expect(r.errors.join('\n')).not.toMatch(/header length|etc\/passwd: /);
  });

  test('symlinks leading outside the folder are refused; their target is never shown', async () => {
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      const dir = copy();
      fs.rmSync(path.join(dir, name));
      fs.symlinkSync('/etc/passwd', path.join(dir, name));
      const r = await validateModel(dir, LIMITS);
      expect(r.ok).toBe(false);
      expect(r.errors.join('\n')).toContain(`${path.join(dir, name)}: a symlink that leads outside the model folder`);
      noFileBytes(r.errors.join('\n'));
    }
  });

  test('a FIFO as a shard or as config.json does not hang validate', () => {
    for (const name of ['model.safetensors', 'config.json', 'tokenizer.json']) {
      const dir = copy();
      fs.rmSync(path.join(dir, name));
      expect(spawnSync('mkfifo', [path.join(dir, name)]).status).toBe(0);
      const r = validateCli(dir);
      expect(r.status).toBe(1);
      expect(r.out).toContain(`${path.join(dir, name)}: not a regular file`);
    }
  });

  test('a shard that is not safetensors: its first bytes are not quoted as a header length', async () => {
    const dir = copy();
    fs.writeFileSync(path.join(dir, 'model.safetensors'), 'root:x:0:0:root:/root:/bin/bash\n');
    const r = await validateModel(dir, LIMITS);
    expect(r.errors.join('\n')).toMatch(/model\.safetensors: truncated or not safetensors: the header length in its first 8 bytes exceeds/);
    noFileBytes(r.errors.join('\n'));
  });
});

describe('every count and size is bounded before use', () => {
  test('100,000 weight_map entries are refused at once', async () => {
    const dir = copy();
    const index = shard(dir);
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < 100_000; i++) weightMap[`t${i}`] = `s${i}.safetensors`;
    fs.writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    const t0 = Date.now();
    const r = await validateModel(dir, LIMITS);
    expect(r.errors).toContain(`${index}: field 'weight_map' has 100000 entries (at most 65536)`);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  test('num_hidden_layers 1e6 is refused by the config parser, naming the bound', async () => {
    const dir = copy();
    editJson(path.join(dir, 'config.json'), (j) => { j.num_hidden_layers = 1_000_000; });
    const r = await validateModel(dir, LIMITS);
    expect(r.errors).toEqual([`${path.join(dir, 'config.json')}: field 'num_hidden_layers' is out of range: 1000000 (1 to 1024)`]);
  });

  test.each([
    ['[2^62, 4] F32 holding 0 bytes', { dtype: 'F32', shape: [2 ** 62, 4], data_offsets: [0, 0] }, /shape must hold non-negative integers/],
    ['negative offsets', { dtype: 'F16', shape: [64], data_offsets: [-128, 0] }, /data_offsets must be two non-negative integers/],
    ['float offsets', { dtype: 'F16', shape: [64], data_offsets: [0.5, 128.5] }, /data_offsets must be two non-negative integers/],
    ['a float shape', { dtype: 'F16', shape: [64.5], data_offsets: [0, 129] }, /shape must hold non-negative integers/],
    ['an entry without its fields', { dtype: 'F16' }, /header entry needs dtype, shape and data_offsets/],
  ])('a header with %s is refused by validate (and by the engine)', async (_, entry, message) => {
    const dir = copy();
    rawSafetensors(path.join(dir, 'model.safetensors'), { 'model.norm.weight': entry }, 256);
    const r = await validateModel(dir, LIMITS);
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(message);
    expect(r.errors.join('\n')).not.toMatch(/undefined is not iterable/);
  });
});

describe('generation_config.json is checked at load', () => {
  test('top_k 1e12 is ignored with a warning naming the field; the defaults keep the valid fields', async () => {
    const dir = copy();
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ top_k: 1e12, temperature: 0.7, eos_token_id: 99999999 }));
    const r = await validateModel(dir, LIMITS);
    expect(r.ok).toBe(true);
    const file = path.join(dir, 'generation_config.json');
    expect(r.warnings).toContain(`${file}: field 'top_k' is 1000000000000, expected an integer in [0, 2147483647]; it is ignored`);
    expect(r.warnings).toContain(`${file}: field 'eos_token_id' is 99999999, expected token ids in [0, 32000); it is ignored`);
    const { readModelDefaults } = await import('../../src/api/model');
    expect(readModelDefaults(dir, 32000)).toEqual({ temperature: 0.7 });
  });

  test('a generation_config.json that is not JSON is an error naming the file', async () => {
    const dir = copy();
    fs.writeFileSync(path.join(dir, 'generation_config.json'), 'root:x:0:0');
    const r = await validateModel(dir, LIMITS);
    expect(r.errors).toEqual([`${path.join(dir, 'generation_config.json')}: not valid JSON`]);
  });
});

describe('validate --check-values', () => {
  test('a NaN in the embedding is found only when asked for', async () => {
    const dir = copy();
    const file = path.join(dir, 'model.safetensors');
    const tensors = readSafetensors(file);
    const specs: TensorSpec[] = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
    const embed = tensors.get('model.embed_tokens.weight')!.data as Uint16Array;
    embed[64 * 5 + 3] = 0x7e00;   // f16 NaN in row 5
    embed[64 * 9] = 0xfc00;       // -Inf
    writeSafetensors(file, specs);
    expect((await validateModel(dir, LIMITS)).ok).toBe(true);
    const r = await validateModel(dir, { ...LIMITS, checkValues: true });
    expect(r.errors).toEqual([`${file}: tensor 'model.embed_tokens.weight' holds 2 NaN or infinite values (the first at element ${64 * 5 + 3})`]);
    const cli = validateCli(dir, ['--check-values']);
    expect(cli.status).toBe(1);
    expect(cli.out).toContain('holds 2 NaN or infinite values');
  });
});

describe('gyre-manifest.json', () => {
  test('a FIFO listed in the manifest is not hashed for ever; a manifest symlinked out is refused unquoted', () => {
    const root = path.join(tmp, `sm${n++}`);
    fs.mkdirSync(root);
    const dir = copy();
    fs.renameSync(dir, path.join(root, 'model'));
    const model = path.join(root, 'model');
    fs.rmSync(path.join(model, 'tokenizer_config.json'));
    expect(spawnSync('mkfifo', [path.join(model, 'tokenizer_config.json')]).status).toBe(0);
    fs.writeFileSync(path.join(model, 'gyre-manifest.json'), JSON.stringify({
      format: 'gyre-manifest/1', files: [{ name: 'tokenizer_config.json', size: 0, sha256: '0'.repeat(64) }],
    }));
    // No --model: /opt/ml/model under GYRE_SAGEMAKER_ROOT, whose files are hashed.
    const r = spawnSync(process.execPath, [CLI, 'validate'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, GYRE_SAGEMAKER_ROOT: root, GYRE_MODEL: '' },
    });
    expect(r.status).toBe(1);
    expect(`${r.stdout}${r.stderr}`).toContain(`${path.join(model, 'tokenizer_config.json')}: not a regular file`);
    fs.rmSync(path.join(model, 'gyre-manifest.json'));
    fs.symlinkSync('/etc/passwd', path.join(model, 'gyre-manifest.json'));
    const r2 = validateCli(model);
    expect(r2.status).toBe(1);
    expect(r2.out).toContain(`${path.join(model, 'gyre-manifest.json')}: a symlink that leads outside the model folder`);
    noFileBytes(r2.out);
  });
});
