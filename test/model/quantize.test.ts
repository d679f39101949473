// 8-bit weights on disk: `gyre quantize`, `gyre upload --quantize int8`, and loading them back
// from S3 gives the logits of quantize-at-load bit for bit (needs the built addon). Real s3rver.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { loadAddon } from '../../src/engine/native';
import { makeModel } from '../../src/model/make_model';
import { MANIFEST_NAME } from '../../src/model/manifest';
import { resolveModel } from '../../src/model/model_source';
import { quantizeModel } from '../../src/model/quantize';
import { SafetensorsFile, type TensorSpec, readSafetensors, writeSafetensors } from '../../src/model/safetensors';
import { isLinearWeight, validateModel } from '../../src/model/validate';
import { captureOutput, filesEqual, type S3Server, startS3rver, useEndpoint } from './s3_helpers';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');
const IDS = '1,450,4086,338,263,1243,29889,13,3492,29871';
const quiet = { progress: { log: false as const, bar: false } };

let s3: S3Server;
let tmp: string;
let f16: string;          // tiny, f16, tied embeddings (the demo's shape)
let q8: string;           // its `gyre quantize` output
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startS3rver(['models']);
  useEndpoint(s3.port);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-qtest-'));
  process.env.GYRE_CACHE_DIR = path.join(tmp, 'cache');
  f16 = path.join(tmp, 'f16');
  makeModel({ shape: 'tiny', dtype: 'f16', seed: 11, scale: 4, out: f16 });
  q8 = path.join(tmp, 'q8');
});
afterAll(async () => {
  process.env = savedEnv;
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => jest.restoreAllMocks());

const gyre = (...args: string[]) => main(['node', 'gyre', ...args]);
let n = 0;

/** `gyre logits` of IDS; returns the output file. */
async function logits(model: string, ...flags: string[]): Promise<string> {
  const out = path.join(tmp, `logits-${n++}.safetensors`);
  captureOutput();
  expect(await gyre('logits', '--model', model, '--ids', IDS, '--out', out, '--backend', 'cpu', ...flags)).toBe(0);
  jest.restoreAllMocks();
  return out;
}

/** Every tensor of a folder's weight files: name -> its file and header entry. */
function tensorsOf(dir: string): Map<string, { file: string; dtype: string; shape: number[]; bytes: number }> {
  const m = new Map<string, { file: string; dtype: string; shape: number[]; bytes: number }>();
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    const st = SafetensorsFile.open(path.join(dir, f));
    for (const [name, t] of st.tensors) m.set(name, { file: f, dtype: t.dtype, shape: t.shape, bytes: t.end - t.begin });
  }
  return m;
}

/** Round half to even, as the C++ quantizer (std::nearbyint in the default rounding mode). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

describe('gyre quantize', () => {
  test('writes the documented layout: I8 linear weights + F32 scales per row, everything else as it was', async () => {
    const io = captureOutput();
    expect(await gyre('quantize', '--model', f16, '--out', q8)).toBe(0);
    expect(io.stderr()).toMatch(/gyre: wrote .*q8 \(model\.safetensors; 14 int8 tensors; [\d.]+ MiB of weights from [\d.]+ MiB of F16\)/);
    const done = io.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((e) => e.event === 'quantize' && e.done);
    expect(done).toMatchObject({ ok: true, bytes: done.total_bytes });

    const src = tensorsOf(f16), out = tensorsOf(q8);
    const linear = [...src.keys()].filter(isLinearWeight);
    expect(linear).toHaveLength(14);
    expect(out.size).toBe(src.size + linear.length);
    let srcLinear = 0, outLinear = 0, rows = 0;
    for (const [name, t] of src) {
      const o = out.get(name)!;
      expect(o.shape).toEqual(t.shape);
      if (isLinearWeight(name)) {
        expect(o.dtype).toBe('I8');
        expect(out.get(`${name}_scale`)).toMatchObject({ dtype: 'F32', shape: [t.shape[0]] });
        srcLinear += t.bytes; outLinear += o.bytes; rows += t.shape[0];
      } else {
        expect(o.dtype).toBe('F16');   // embeddings and norms keep their dtype
        expect(o.bytes).toBe(t.bytes);
      }
    }
    expect(out.has('lm_head.weight')).toBe(false);   // tied, and the LM head is not quantized by default
    // The linear weights take exactly half their f16 bytes, plus 4 bytes of scale per output row.
    expect(outLinear * 2).toBe(srcLinear);
    const outBytes = [...out.values()].reduce((a, t) => a + t.bytes, 0);
    const srcBytes = [...src.values()].reduce((a, t) => a + t.bytes, 0);
    expect(outBytes).toBe(srcBytes - srcLinear / 2 + 4 * rows);

    const config = JSON.parse(fs.readFileSync(path.join(q8, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual({
      quant_method: 'gyre_int8', bits: 8, group: 'per_output_channel', symmetric: true, lm_head: false, source_dtype: 'F16',
    });
    expect(config.tie_word_embeddings).toBe(true);
    const { quantization_config: _, ...rest } = config;
    expect(rest).toEqual(JSON.parse(fs.readFileSync(path.join(f16, 'config.json'), 'utf8')));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(filesEqual(path.join(q8, f), path.join(f16, f))).toBe(true);
    }
    expect(fs.readdirSync(q8).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);

    const report = await validateModel(q8);
    expect(report).toMatchObject({ ok: true, quantization: 'int8', dtype: 'i8+f16', weightBytes: outBytes });
    // An int8 folder is reported as int8 only, as the float folder's int8 way (the GPU holds
    // norms in f32, so a little more than the files).
    expect(report.a10g?.fp16).toBeUndefined();
    expect(report.a10g?.int8.weightBytes).toBe((await validateModel(f16)).a10g?.int8.weightBytes);
    expect(report.a10g?.int8.weightBytes).toBeGreaterThanOrEqual(outBytes);
    expect(report.a10g?.int8.weightBytes).toBeLessThan(outBytes + 64 * 1024);
  });

  test('the values: per-row absmax scales, q = round(w / scale), |w - q * scale| <= scale / 2', () => {
    const src = SafetensorsFile.open(path.join(f16, 'model.safetensors'));
    const out = SafetensorsFile.open(path.join(q8, 'model.safetensors'));
    for (const name of ['model.layers.0.self_attn.k_proj.weight', 'model.layers.1.mlp.down_proj.weight']) {
      const w = src.readF32(name);
      const [rows, cols] = src.info(name).shape;
      const q = out.read(name).data as Int8Array;
      const scale = out.readF32(`${name}_scale`);
      let exact = 0;
      for (let r = 0; r < rows; r++) {
        let absmax = 0;
        for (let c = 0; c < cols; c++) absmax = Math.max(absmax, Math.abs(w[r * cols + c]));
        expect(scale[r]).toBe(Math.fround(absmax / 127));
        let hitsMax = false;
        for (let c = 0; c < cols; c++) {
          const x = w[r * cols + c], qi = q[r * cols + c];
          expect(Math.abs(qi)).toBeLessThanOrEqual(127);
          if (Math.abs(qi) === 127) hitsMax = true;
          // Within half a step, plus the float32 rounding of w / scale (up to 127 * 2^-24 of a step).
          expect(Math.abs(x - qi * scale[r])).toBeLessThanOrEqual(scale[r] * (0.5 + 1e-5));
          if (qi === roundHalfEven(Math.fround(x / scale[r]))) exact++;
        }
        expect(hitsMax).toBe(true);   // the largest weight of a row maps to +-127
      }
      // A tie decided the other way (w / scale rounded differently) is the only allowed difference.
      expect(exact).toBeGreaterThanOrEqual(rows * cols - 2);
    }
  });

  test('the addon quantizer follows the contract on edge cases: zero rows, ties, all three float dtypes', () => {
    const addon = loadAddon();
    // Row 0: absmax 127 -> scale 1, so 2.5 -> 2 and 3.5 -> 4 (half to even), -0.5 -> -0; row 1: all zero.
    const w = Float32Array.from([127, 2.5, 3.5, -0.5, 0, 0, 0, 0]);
    const r = addon.quantizeInt8(new Uint8Array(w.buffer), 'F32', 2, 4);
    expect([...r.scale]).toEqual([1, 0]);
    expect([...r.q].map((x) => x + 0)).toEqual([127, 2, 4, 0, 0, 0, 0, 0]);
    const half = addon.quantizeInt8(new Uint8Array(Uint16Array.from([0x3c00, 0xbc00, 0x3800]).buffer), 'F16', 1, 3);  // 1, -1, 0.5
    expect([...half.q]).toEqual([127, -127, 64]);   // 0.5 * 127 = 63.5 -> 64 (even)
    const bf = addon.quantizeInt8(new Uint8Array(Uint16Array.from([0x3f80, 0xbf80]).buffer), 'BF16', 1, 2);  // 1, -1
    expect([...bf.q]).toEqual([127, -127]);
    expect(() => addon.quantizeInt8(new Uint8Array(12), 'F32', 2, 2)).toThrow(/holds 12 bytes, expected 16/);
  });

  test('loading the int8 files gives the logits of quantize-at-load bit for bit', async () => {
    const fromFiles = await logits(q8);
    expect(filesEqual(fromFiles, await logits(f16, '--quantization', 'int8'))).toBe(true);
    expect(filesEqual(fromFiles, await logits(q8, '--quantization', 'int8'))).toBe(true);   // int8 files run int8 either way
    expect(filesEqual(fromFiles, await logits(f16))).toBe(false);                           // and int8 is not f16
  });

  test('--quantize-lm-head on a tied model: an explicit int8 lm_head, the embedding stays float', async () => {
    const out = path.join(tmp, 'q8-head');
    captureOutput();
    expect(await gyre('quantize', '--model', f16, '--out', out, '--quantize-lm-head')).toBe(0);
    const t = tensorsOf(out);
    expect(t.get('lm_head.weight')).toMatchObject({ dtype: 'I8', shape: [32000, 64] });
    expect(t.get('lm_head.weight_scale')).toMatchObject({ dtype: 'F32', shape: [32000] });
    expect(t.get('model.embed_tokens.weight')).toMatchObject({ dtype: 'F16' });
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ tie_word_embeddings: true, quantization_config: { lm_head: true } });
    expect((await validateModel(out)).ok).toBe(true);
    const fromFiles = await logits(out);
    expect(filesEqual(fromFiles, await logits(f16, '--quantization', 'int8', '--quantize-lm-head'))).toBe(true);
    expect(filesEqual(fromFiles, await logits(q8))).toBe(false);
  });

  test('an f32 model with its own lm_head, and a sharded bf16 model (shards + index out)', async () => {
    const f32 = path.join(tmp, 'q8-f32');
    await quantizeModel(path.join(REF, 'llama-mha'), f32, quiet);
    expect(JSON.parse(fs.readFileSync(path.join(f32, 'config.json'), 'utf8')).quantization_config.source_dtype).toBe('F32');
    expect(tensorsOf(f32).get('lm_head.weight')).toMatchObject({ dtype: 'F32' });
    const ids = '5,77,300,12,9,250,31';
    const run = async (model: string, ...flags: string[]) => {
      const o = path.join(tmp, `f32-${n++}.safetensors`);
      captureOutput();
      expect(await gyre('logits', '--model', model, '--ids', ids, '--out', o, '--backend', 'cpu', ...flags)).toBe(0);
      return o;
    };
    expect(filesEqual(await run(f32), await run(path.join(REF, 'llama-mha'), '--quantization', 'int8'))).toBe(true);

    const bf16 = path.join(tmp, 'bf16');
    makeModel({ shape: 'tiny', dtype: 'bf16', seed: 3, out: bf16, maxSingleFileBytes: 1 << 20, shardBytes: 64 << 10 });
    const out = path.join(tmp, 'q8-bf16');
    const r = await quantizeModel(bf16, out, { ...quiet, maxSingleFileBytes: 1 << 20, shardBytes: 64 << 10 });
    expect(r.files.length).toBeGreaterThan(3);
    expect(r.files).toContain('model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const t = tensorsOf(out);
    expect(index.metadata.total_size).toBe([...t.values()].reduce((a, x) => a + x.bytes, 0));
    for (const [name, x] of t) {
      expect(index.weight_map[name]).toBe(x.file);
      if (x.dtype === 'I8') expect(t.get(`${name}_scale`)!.file).toBe(x.file);   // a weight and its scales share a shard
    }
    expect(r.report.ok).toBe(true);
    expect(filesEqual(await logits(out), await logits(bf16, '--quantization', 'int8'))).toBe(true);
  });
});

describe('gyre quantize refuses', () => {
  test('an int8 model, a non-float weight, a non-empty --out, a missing model', async () => {
    const io = captureOutput();
    expect(await gyre('quantize', '--model', q8, '--out', path.join(tmp, 'again'))).toBe(1);
    expect(io.stderr()).toMatch(/q8: already int8 \(config\.json quantization_config is gyre_int8\); quantize the float model instead/);
    expect(fs.existsSync(path.join(tmp, 'again'))).toBe(false);

    const bad = path.join(tmp, 'i32');
    fs.mkdirSync(bad);
    for (const f of fs.readdirSync(f16)) fs.copyFileSync(path.join(f16, f), path.join(bad, f));
    const file = path.join(bad, 'model.safetensors');
    const specs: TensorSpec[] = [...readSafetensors(file)].map(([name, t]) => (name === 'model.layers.1.self_attn.v_proj.weight'
      ? { name, dtype: 'I32', shape: t.shape, data: new Int32Array(32 * 64) } : { name, dtype: t.dtype, shape: t.shape, data: t.data }));
    writeSafetensors(file, specs);
    expect(await gyre('quantize', '--model', bad, '--out', path.join(tmp, 'i32-out'))).toBe(1);
    expect(io.stderr()).toMatch(/tensor 'model\.layers\.1\.self_attn\.v_proj\.weight' has dtype I32; expected F32, F16 or BF16/);

    const busy = path.join(tmp, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'keep.txt'), 'mine');
    expect(await gyre('quantize', '--model', f16, '--out', busy)).toBe(1);
    expect(io.stderr()).toMatch(/busy: exists and is not empty/);
    expect(fs.readdirSync(busy)).toEqual(['keep.txt']);

    expect(await gyre('quantize', '--model', path.join(tmp, 'nope'), '--out', path.join(tmp, 'nope-out'))).toBe(1);
    expect(io.stderr()).toMatch(/nope: not a folder/);
    expect(await gyre('quantize', '--model', f16, '--out', f16)).toBe(1);
    expect(io.stderr()).toMatch(/exists and is not empty|--out must differ/);
    expect(await gyre('quantize', '--model', f16)).toBe(2);   // --out is required
    expect(await gyre('upload', '--model', f16, '--to', 's3://models/x/', '--quantize-lm-head')).toBe(2);
    expect(io.stderr()).toMatch(/--quantize-lm-head needs --quantize int8/);
    expect(await gyre('logits', '--model', f16, '--ids', '1', '--out', path.join(tmp, 'x.safetensors'), '--quantization', 'int4')).toBe(2);
  });
});

describe('through S3', () => {
  test('gyre quantize -> gyre upload -> load from s3:// = the float folder quantized at load, bit for bit', async () => {
    captureOutput();
    expect(await gyre('upload', '--model', q8, '--to', 's3://models/q8/')).toBe(0);
    const got = await resolveModel('s3://models/q8/', quiet);
    const manifest = JSON.parse(fs.readFileSync(path.join(got.dir, MANIFEST_NAME), 'utf8'));
    expect(manifest).toMatchObject({ quantization: 'int8', dtype: 'i8+f16' });
    expect(filesEqual(path.join(got.dir, 'model.safetensors'), path.join(q8, 'model.safetensors'))).toBe(true);
    expect(filesEqual(await logits('s3://models/q8/'), await logits(f16, '--quantization', 'int8'))).toBe(true);
  });

  test('gyre upload --quantize int8 uploads the same files as gyre quantize, and removes its temporary folder', async () => {
    const io = captureOutput();
    expect(await gyre('upload', '--model', f16, '--quantize', 'int8', '--to', 's3://models/q8-direct/')).toBe(0);
    expect(io.stdout()).toBe('s3://models/q8-direct/\n');
    const got = await resolveModel('s3://models/q8-direct/', quiet);
    for (const f of fs.readdirSync(q8)) expect(filesEqual(path.join(got.dir, f), path.join(q8, f))).toBe(true);
    expect(filesEqual(await logits('s3://models/q8-direct/'), await logits(f16, '--quantization', 'int8'))).toBe(true);
    // The temporary int8 folder is gone.
    expect(fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('gyre-quantize-') && fs.existsSync(path.join(os.tmpdir(), d, 'int8')))).toEqual([]);
  });
});
