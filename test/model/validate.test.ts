// gyre validate, one fault at a time on copies of the demo model (f16, real Llama-2 tokenizer).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { readSafetensors, type Tensor, type TensorSpec, writeSafetensors } from '../../src/model/safetensors';
import { loadAddon } from '../../src/engine/native';
import { A10G_BYTES, validateModel } from '../../src/model/validate';
import { captureOutput } from './s3_helpers';

const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo');
const REF = path.resolve(__dirname, '..', 'fixtures', 'reference', 'llama-mha');
let tmp: string;
let n = 0;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-validate-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => jest.restoreAllMocks());

function copy(from = DEMO): string {
  const dir = path.join(tmp, `m${n++}`);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  return dir;
}

const specs = (tensors: Map<string, Tensor>): TensorSpec[] =>
  [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));

/** Rewrites model.safetensors after `edit` changed its tensor list. */
function rewrite(dir: string, edit: (t: TensorSpec[]) => TensorSpec[]): void {
  const file = path.join(dir, 'model.safetensors');
  const t = edit(specs(readSafetensors(file)));
  writeSafetensors(file, t);
}

/** Splits model.safetensors into two shards with an index. */
function shard(dir: string): { index: string; weightMap: Record<string, string> } {
  const all = specs(readSafetensors(path.join(dir, 'model.safetensors')));
  fs.rmSync(path.join(dir, 'model.safetensors'));
  const half = Math.ceil(all.length / 2);
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  writeSafetensors(path.join(dir, files[0]), all.slice(0, half));
  writeSafetensors(path.join(dir, files[1]), all.slice(half));
  const weightMap = Object.fromEntries(all.map((s, i) => [s.name, files[i < half ? 0 : 1]]));
  const index = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return { index, weightMap };
}

function editConfig(dir: string, over: Record<string, unknown>): void {
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...over }));
}

const addon = () => loadAddon();

test('the demo model is valid; its KV figure is the pool the CUDA backend sizes, worked out by hand', async () => {
  const r = await validateModel(DEMO);
  expect(r.errors).toEqual([]);
  expect(r).toMatchObject({ ok: true, architecture: 'LlamaForCausalLM', dtype: 'f16', tokenizerVocab: 32000 });
  expect(r.chatTemplate).toMatch(/tokenizer_config\.json/);
  // tiny: 32000x64 embedding (tied) + norm + 2 layers of (64*64 + 2*32*64 + 64*64 + 3*176*64 + 2*64)
  const params = 32000 * 64 + 64 + 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 176 * 64 + 2 * 64);
  expect(r.numParameters).toBe(params);
  expect(r.weightBytes).toBe(params * 2);
  expect(r.kvBytesPerToken).toBe(2 * 2 * 2 * 16 * 2);   // K+V, layers, kv heads, head dim, fp16
  // The CUDA backend: fp16 weights (norms f32, each group 256-byte aligned), step buffers for 256
  // sequences and 2048 tokens, a 512 MiB context, a 256 MiB margin, in 16-token blocks.
  const weights = 32000 * 64 * 2 + 256 + 2 * (128 * 64 * 2 + 64 * 64 * 2 + 352 * 64 * 2 + 64 * 176 * 2 + 2 * 256);
  const activations = 2048 * (4 * (2 * 64 + 128 + 2 * 176) + 2 * (64 + 2 * 64 + 176));
  const logits = 256 * (2 * 64 + 4 * 32000);
  const workspace = 4 * 256 * 4 * 4 * (16 + 2);   // 4 heads, 4 splits of 512 keys for 2048
  const kvBytes = Math.floor(0.9 * A10G_BYTES) - weights - (activations + logits + workspace) - 2 ** 29 - 2 ** 28;
  const tokens = Math.floor(kvBytes / (256 * 16)) * 16;
  expect(r.kvCacheTokens).toBe(tokens);
  expect(r.a10g?.fp16).toEqual({ weightBytes: weights, kvCacheTokens: tokens, conversations: Math.floor(tokens / 1040) });
  // ... and what the native plan (the backend's own arithmetic) says, both ways.
  const plan = addon().planGpuMemory({ modelDir: DEMO });
  expect(plan).toMatchObject({ weightBytes: weights, stepBytes: activations + logits + workspace, kvTokens: tokens });
  expect(r.a10g?.int8.kvCacheTokens).toBe(addon().planGpuMemory({ modelDir: DEMO }, { int8: true }).kvTokens);
});

test('validate prints one KV figure per way of holding the weights, the native plan\'s', async () => {
  const io = captureOutput();
  expect(await main(['node', 'gyre', 'validate', '--model', DEMO])).toBe(0);
  const out = io.stdout();
  const fp16 = addon().planGpuMemory({ modelDir: DEMO }).kvTokens, int8 = addon().planGpuMemory({ modelDir: DEMO }, { int8: true }).kvTokens;
  expect(out).toContain(`A10G fp16      weights 0.00 GB: ${fp16.toLocaleString('en-US')} KV tokens, ` +
    `${Math.floor(fp16 / 1040).toLocaleString('en-US')} conversations of 960+80 tokens`);
  expect(out).toContain(`A10G int8      weights 0.00 GB: ${int8.toLocaleString('en-US')} KV tokens`);
  expect(out.match(/KV tokens/g)).toHaveLength(2);
});

describe('the A10G budget of the published shapes (the native plan)', () => {
  test('Llama-2-7B in fp16 leaves room for several full contexts', () => {
    const p = addon().planGpuMemory({ shape: 'llama-2-7b' });
    expect(p.weightBytes).toBeGreaterThan(13.47e9);
    expect(p.weightBytes).toBeLessThan(13.49e9);
    expect(p.kvBytesPerToken).toBe(2 * 32 * 32 * 128 * 2);
    expect(p.kvTokens).toBeGreaterThan(3 * 4096);
    expect(p.kvTokens % 16).toBe(0);
  });

  test('Llama-2-13B: 26.0 GB in fp16 does not fit; int8 is 13.35 GB and fits', () => {
    const fp16 = addon().planGpuMemory({ shape: 'llama-2-13b' });
    expect(fp16.weightBytes).toBeGreaterThan(26.03e9);
    expect(fp16.kvBytes).toBeLessThan(0);
    expect(fp16.kvTokens).toBe(0);
    const int8 = addon().planGpuMemory({ shape: 'llama-2-13b' }, { int8: true });
    // linear weights 12,687,769,600 + scales 8,519,680 + embedding and LM head 655,360,000 + f32 norms 1,658,880
    expect(int8.weightBytes).toBeGreaterThanOrEqual(12_687_769_600 + 8_519_680 + 655_360_000 + 1_658_880);
    expect(int8.weightBytes).toBeLessThan(13.354e9);
    expect(int8.kvTokens).toBeGreaterThan(4096);
  });

  test('bad plan options are named', () => {
    expect(() => addon().planGpuMemory({ shape: 'llama-3-8b' })).toThrow("unknown shape 'llama-3-8b' (known: tiny, 100m, llama-2-7b, llama-2-13b, mistral-7b)");
    expect(() => addon().planGpuMemory({ shape: 'tiny', modelDir: DEMO })).toThrow('exactly one of shape');
    expect(() => addon().planGpuMemory({ shape: 'tiny' }, { gpuMemoryFraction: 1.5 })).toThrow('GYRE_GPU_MEMORY_FRACTION');
  });
});

describe('the A10G budget, fp16 and int8', () => {
  test('the int8 layout is checked: I8 without quantization_config, a missing scale, a float weight in an int8 folder', async () => {
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const dir = copy();
    rewrite(dir, (t) => t.map((s) => (s.name === name ? { ...s, dtype: 'I8', data: new Int8Array(64 * 64) } : s)));
    expect((await validateModel(dir)).errors).toEqual([`${dir}/model.safetensors: tensor '${name}' has dtype I8, but config.json ` +
      'has no quantization_config (gyre_int8); write int8 models with `gyre quantize`']);
    editConfig(dir, { quantization_config: { quant_method: 'gyre_int8', bits: 8, group: 'per_output_channel', symmetric: true, lm_head: false, source_dtype: 'F16' } });
    const r = await validateModel(dir);
    expect(r.quantization).toBe('int8');
    expect(r.a10g?.fp16).toBeUndefined();
    expect(r.errors).toContain(`${dir}: tensor '${name}_scale' is missing (the F32 [64] scales of the int8 weight '${name}')`);
    expect(r.errors).toContain(`${dir}/model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' has dtype F16; expected I8 (config.json quantization_config is gyre_int8)`);
    rewrite(dir, (t) => [...t, { name: `${name}_scale`, dtype: 'F16', shape: [64], data: new Uint16Array(64) }]);
    expect((await validateModel(dir)).errors).toContain(`${dir}/model.safetensors: tensor '${name}_scale' is F16 [64], expected F32 [64]`);
  });
});

test('a wrong shape names the file, the tensor, and both shapes', async () => {
  const dir = copy();
  rewrite(dir, (t) => t.map((s) => (s.name === 'model.layers.1.mlp.gate_proj.weight' ? { ...s, shape: [64, 176] } : s)));
  const r = await validateModel(dir);
  expect(r.ok).toBe(false);
  expect(r.errors).toEqual([`${dir}/model.safetensors: tensor 'model.layers.1.mlp.gate_proj.weight' has shape [64, 176], expected [176, 64] from config.json`]);
});

test('a wrong config.json dimension is named once as the root cause, not as one error per tensor', async () => {
  const edit = (dir: string, field: string, v: number) => {
    const f = path.join(dir, 'config.json');
    fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), [field]: v }));
    return dir;
  };
  const hidden = edit(copy(), 'hidden_size', 128);
  const r = await validateModel(hidden);
  expect(r.errors).toEqual([expect.stringMatching(
    /^.*config\.json: hidden_size is 128, but the weights have 64 \(model\.embed_tokens\.weight is \[32000, 64\]\); \d+ tensors disagree with config\.json, e\.g\. .*/)]);
  const inter = await validateModel(edit(copy(), 'intermediate_size', 200));
  expect(inter.errors).toEqual([expect.stringMatching(/config\.json: intermediate_size is 200, but the weights have 176 \(model\.layers\.0\.mlp\.gate_proj\.weight is \[176, 64\]\); 6 tensors disagree/)]);
});

test('a missing tensor is named', async () => {
  const dir = copy();
  rewrite(dir, (t) => t.filter((s) => s.name !== 'model.layers.0.self_attn.k_proj.weight'));
  const r = await validateModel(dir);
  expect(r.errors).toEqual([`${dir}: tensor 'model.layers.0.self_attn.k_proj.weight' is missing (config.json expects shape [32, 64])`]);
});

test('an unknown architecture is refused by the engine\'s own config parser', async () => {
  const dir = copy();
  editConfig(dir, { architectures: ['GPT2LMHeadModel'] });
  const r = await validateModel(dir);
  expect(r.errors).toEqual([`${dir}/config.json: field 'architectures' 'GPT2LMHeadModel' is not supported (supported: LlamaForCausalLM, MistralForCausalLM)`]);
});

test('a tokenizer vocabulary larger than the embedding is refused', async () => {
  const dir = copy(REF);   // vocab_size 320, no tokenizer
  expect((await validateModel(dir)).errors).toEqual([`${dir}/tokenizer.json: missing (text prompts and chat need the Hugging Face tokenizer.json)`]);
  fs.copyFileSync(path.join(DEMO, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const r = await validateModel(dir);
  expect(r.errors).toEqual([`${dir}/tokenizer.json: vocabulary of 32000 tokens does not fit the embedding ` +
    '(model.embed_tokens.weight has 320 rows, config.json vocab_size)']);
  expect(r.warnings.join('\n')).toMatch(/no chat_template; chat requests use the built-in llama-2-chat template/);
});

describe('the shard index', () => {
  test('a sharded copy is valid', async () => {
    const dir = copy();
    shard(dir);
    expect((await validateModel(dir)).errors).toEqual([]);
  });

  test('a tensor mapped to the wrong shard', async () => {
    const dir = copy();
    const { index, weightMap } = shard(dir);
    weightMap['model.norm.weight'] = weightMap['model.norm.weight'].includes('00001') ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
    fs.writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    const errors = (await validateModel(dir)).errors;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`^${index}: maps tensor 'model.norm.weight' to model-0000\\d-of-00002.safetensors, but model-0000\\d-of-00002.safetensors holds it$`));
  });

  test('a missing shard, an unlisted tensor, a duplicate tensor', async () => {
    const dir = copy();
    const { index, weightMap } = shard(dir);
    fs.renameSync(path.join(dir, 'model-00002-of-00002.safetensors'), path.join(tmp, 'gone.safetensors'));
    expect((await validateModel(dir)).errors[0]).toMatch(new RegExp(`^${index}: shard 'model-00002-of-00002.safetensors' \\(for tensor '.*' and \\d+ more\\) is missing$`));

    fs.renameSync(path.join(tmp, 'gone.safetensors'), path.join(dir, 'model-00002-of-00002.safetensors'));
    const unlisted = Object.keys(weightMap).find((k) => weightMap[k].includes('00001'))!;
    const { [unlisted]: _, ...rest } = weightMap;
    fs.writeFileSync(index, JSON.stringify({ weight_map: rest }));
    expect((await validateModel(dir)).errors).toEqual([`${index}: does not list tensor '${unlisted}', which model-00001-of-00002.safetensors holds`]);

    fs.writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    const second = path.join(dir, 'model-00002-of-00002.safetensors');
    const t = specs(readSafetensors(second));
    writeSafetensors(second, [...t, { name: 'model.embed_tokens.weight', dtype: 'F16', shape: [32000, 64], data: new Uint16Array(32000 * 64) }]);
    const errors = (await validateModel(dir)).errors;
    expect(errors).toContain(`${second}: tensor 'model.embed_tokens.weight' is also in ${dir}/model-00001-of-00002.safetensors`);
  });

  test('shards without an index', async () => {
    const dir = copy();
    const { index } = shard(dir);
    fs.rmSync(index);
    expect((await validateModel(dir)).errors).toEqual([`${index}: missing, and the folder has 2 .safetensors files without it`]);
  });
});

test('gyre validate prints the report and exits 1 on errors', async () => {
  const dir = copy();
  editConfig(dir, { num_key_value_heads: 3 });
  const io = captureOutput();
  expect(await main(['node', 'gyre', 'validate', '--model', dir])).toBe(1);
  expect(io.stdout()).toMatch(/field 'num_key_value_heads' 3 does not divide num_attention_heads 4/);
  const ok = captureOutput();
  expect(await main(['node', 'gyre', 'validate', '--model', DEMO])).toBe(0);
  expect(ok.stdout()).toMatch(/OK\n {2}architecture {3}LlamaForCausalLM, f16, 2,[\d,]+ parameters[\s\S]*the pool the CUDA backend sizes on an A10G/);
});
