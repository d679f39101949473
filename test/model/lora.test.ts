// LoRA merge. The oracle is independent of the merge: a float64 forward pass (checked against
// Hugging Face's logits first) that applies the adapter on the fly as W x + s * B (A x), never
// forming B A; the merged folder is run by the engine itself.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { Engine } from '../../src/engine/engine';
import { mergeLora } from '../../src/model/lora';
import { floatToHalf, halfToFloat, SafetensorsFile, type TensorSpec, writeSafetensors } from '../../src/model/safetensors';
import { llamaForward, type OnTheFlyLora } from './llama_reference';
import { captureOutput } from './s3_helpers';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference', 'llama-gqa-theta');
const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo');
const MODULES = { q_proj: 'self_attn', k_proj: 'self_attn', v_proj: 'self_attn', o_proj: 'self_attn', gate_proj: 'mlp', up_proj: 'mlp', down_proj: 'mlp' } as const;

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-lora-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => jest.restoreAllMocks());

function normal(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32; };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Writes a PEFT adapter for `base` and returns it in on-the-fly form. */
function makeAdapter(base: string, out: string, modules: (keyof typeof MODULES)[], r: number, alpha: number, seed: number): OnTheFlyLora {
  const st = SafetensorsFile.open(path.join(base, 'model.safetensors'));
  const layers = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8')).num_hidden_layers;
  const rand = normal(seed);
  const specs: TensorSpec[] = [];
  const pairs: OnTheFlyLora['pairs'] = new Map();
  for (let l = 0; l < layers; l++) {
    for (const m of modules) {
      const name = `model.layers.${l}.${MODULES[m]}.${m}`;
      const [o, i] = st.info(`${name}.weight`).shape;
      const a = Float32Array.from({ length: r * i }, () => 0.1 * rand());
      const b = Float32Array.from({ length: o * r }, () => 0.05 * rand());
      specs.push({ name: `base_model.model.${name}.lora_A.weight`, dtype: 'F32', shape: [r, i], data: a });
      specs.push({ name: `base_model.model.${name}.lora_B.weight`, dtype: 'F32', shape: [o, r], data: b });
      pairs.set(`${name}.weight`, { a, b, r });
    }
  }
  fs.mkdirSync(out, { recursive: true });
  writeSafetensors(path.join(out, 'adapter_model.safetensors'), specs);
  fs.writeFileSync(path.join(out, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', base_model_name_or_path: 'base', r, lora_alpha: alpha, target_modules: modules,
    lora_dropout: 0.05, bias: 'none', fan_in_fan_out: false, task_type: 'CAUSAL_LM',
  }));
  return { scale: alpha / r, pairs };
}

async function engineLogits(dir: string, ids: number[]): Promise<Float32Array> {
  const engine = await Engine.load(dir, { backend: 'cpu' });
  try {
    return await engine.logits(ids);
  } finally {
    await engine.close();
  }
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

test('the float64 oracle reproduces the Hugging Face reference logits', () => {
  const ref = SafetensorsFile.open(path.join(REF, 'reference.safetensors'));
  const ids = Array.from(ref.read('prompt_2.input_ids').data as BigInt64Array, Number);
  const got = llamaForward(REF, ids).flatMap((row) => Array.from(row));
  expect(maxDiff(got, ref.readF32('prompt_2.logits'))).toBeLessThan(1e-5);
});

test('gyre merge: the merged model\'s logits equal the base with the adapter applied on the fly', async () => {
  const adapter = path.join(tmp, 'adapter');
  const lora = makeAdapter(REF, adapter, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 4, 8, 11);
  const out = path.join(tmp, 'merged');
  const io = captureOutput();
  expect(await main(['node', 'gyre', 'merge', '--model', REF, '--adapter', adapter, '--out', out])).toBe(0);
  expect(io.stderr()).toMatch(/merged 21 tensors \(r=4, scale 2\)/);

  const ids = [5, 77, 301, 12, 9, 150, 42, 8, 260, 33, 17];
  const want = llamaForward(REF, ids, lora).flatMap((row) => Array.from(row));
  const base = llamaForward(REF, ids).flatMap((row) => Array.from(row));
  const got = await engineLogits(out, ids);
  expect(maxDiff(got, want)).toBeLessThan(1e-4);
  expect(maxDiff(base, want)).toBeGreaterThan(0.05);   // the adapter matters far beyond the tolerance
  // Untouched tensors are byte-identical.
  const a = SafetensorsFile.open(path.join(REF, 'model.safetensors')), b = SafetensorsFile.open(path.join(out, 'model.safetensors'));
  expect(b.names()).toEqual(a.names());
  expect(Buffer.from((b.read('lm_head.weight').data as Float32Array).buffer).equals(Buffer.from((a.read('lm_head.weight').data as Float32Array).buffer))).toBe(true);
});

test('an f16 base is merged in fp32 and rounded once to f16', async () => {
  const adapter = path.join(tmp, 'adapter-f16');
  const lora = makeAdapter(DEMO, adapter, ['v_proj', 'up_proj'], 2, 16, 5);
  const out = path.join(tmp, 'merged-f16');
  const r = await mergeLora(DEMO, adapter, out);
  expect(r.report.ok).toBe(true);
  expect(r.report.tokenizerVocab).toBe(32000);   // tokenizer and configs come along
  const a = SafetensorsFile.open(path.join(DEMO, 'model.safetensors')), b = SafetensorsFile.open(path.join(out, 'model.safetensors'));
  const name = 'model.layers.1.mlp.up_proj.weight';
  const [outDim, inDim] = a.info(name).shape;
  const w = a.read(name).data as Uint16Array, merged = b.read(name).data as Uint16Array;
  expect(b.info(name).dtype).toBe('F16');
  const p = lora.pairs.get(name)!;
  for (const [o, i] of [[0, 0], [7, 63], [175, 1], [90, 33]]) {
    const delta = p.b[o * 2] * p.a[i] + p.b[o * 2 + 1] * p.a[inDim + i];
    expect(merged[o * inDim + i]).toBe(floatToHalf(Math.fround(halfToFloat(w[o * inDim + i]) + 8 * delta)));
  }
  expect(outDim).toBe(176);
  expect(Buffer.from(b.read('model.norm.weight').data.buffer).equals(Buffer.from(a.read('model.norm.weight').data.buffer))).toBe(true);
});

test('adapters a merge cannot honour are refused with the field or tensor named', async () => {
  const adapter = path.join(tmp, 'adapter-bad');
  makeAdapter(REF, adapter, ['q_proj'], 2, 4, 1);
  const cfgFile = path.join(adapter, 'adapter_config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, target_modules: ['q_proj', 'lm_head'] }));
  await expect(mergeLora(REF, adapter, path.join(tmp, 'x1'))).rejects.toThrow(`${cfgFile}: field 'target_modules' 'lm_head' is not supported`);
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, r: 3 }));
  await expect(mergeLora(REF, adapter, path.join(tmp, 'x2'))).rejects.toThrow(
    /'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' \[2,128\] and .* do not fit 'model.layers.0.self_attn.q_proj.weight' \[128,128\] at r=3/);
});
