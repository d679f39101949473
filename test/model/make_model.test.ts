import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProgram } from '../../src/cli/main';
import { ChatTemplate } from '../../src/engine/chat_template';
import { Tokenizer } from '../../src/engine/tokenizer';
import { hfConfig, makeModel, resolveShape, shapeNames, tensorPlan } from '../../src/model/make_model';
import { convertF32, SafetensorsFile } from '../../src/model/safetensors';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-mm-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const numParams = (shape: Parameters<typeof resolveShape>[0]) =>
  tensorPlan(resolveShape(shape)).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);

function stats(x: Float32Array): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  for (const v of x) { sum += v; sq += v * v; }
  const mean = sum / x.length;
  return { mean, std: Math.sqrt(sq / x.length - mean * mean) };
}

// jest's toEqual is slow on arrays of millions of elements.
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView) => Buffer.compare(bytesOf(a), bytesOf(b)) === 0;

describe('shapes', () => {
  test('parameter counts match the published models', () => {
    expect(numParams('llama-2-7b')).toBe(6738415616);
    expect(numParams('llama-2-13b')).toBe(13015864320);
    expect(numParams('mistral-7b')).toBe(7241732096);
    expect(numParams('100m')).toBe(109529856); // llama2.c stories110M, tied
  });

  test('mistral-7b config: GQA, sliding window, MistralForCausalLM', () => {
    const c = hfConfig(resolveShape('mistral-7b'), 'bf16');
    expect(c).toMatchObject({
      architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 4096, num_hidden_layers: 32,
      num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 32000,
      rope_theta: 10000, sliding_window: 4096, max_position_embeddings: 32768, tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
    });
    const plan = tensorPlan(resolveShape('mistral-7b', 1));
    expect(plan.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([1024, 4096]);
    expect(plan.map((t) => t.name)).toContain('lm_head.weight');
  });

  test('--layers overrides the layer count; bad values are refused', () => {
    expect(resolveShape('llama-2-13b', 3).layers).toBe(3);
    expect(() => resolveShape('tiny', 0)).toThrow(/layers/);
    expect(shapeNames()).toEqual(['tiny', '100m', 'llama-2-7b', 'llama-2-13b', 'mistral-7b']);
  });

  test("the CLI's --shape choices (listed without loading the addon) are the native table's names", () => {
    const shape = buildProgram().commands.find((c) => c.name() === 'make-model')!.options.find((o) => o.long === '--shape')!;
    expect(shape.argChoices).toEqual(shapeNames());
  });
});

describe('makeModel', () => {
  test('weights follow N(0, 0.02*scale) and norms 1 + N(0, 0.1)', () => {
    const out = path.join(tmp, 'stats');
    makeModel({ shape: 'tiny', out, seed: 3, scale: 2 });
    const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const emb = stats(f.readF32('model.embed_tokens.weight'));
    expect(Math.abs(emb.mean)).toBeLessThan(1e-3);
    expect(emb.std).toBeCloseTo(0.04, 3);
    const norm = stats(Float32Array.from([0, 1].flatMap((i) => [
      ...f.readF32(`model.layers.${i}.input_layernorm.weight`), ...f.readF32(`model.layers.${i}.post_attention_layernorm.weight`)])));
    expect(Math.abs(norm.mean - 1)).toBeLessThan(0.02);
    expect(Math.abs(norm.std - 0.1)).toBeLessThan(0.015);
    expect(f.names()).not.toContain('lm_head.weight'); // tiny is tied
  });

  test('f16 and bf16 weights are the f32 weights correctly rounded', () => {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) makeModel({ shape: 'tiny', out: path.join(tmp, dtype), seed: 5, dtype });
    const f32 = SafetensorsFile.open(path.join(tmp, 'f32', 'model.safetensors'));
    const f16 = SafetensorsFile.open(path.join(tmp, 'f16', 'model.safetensors'));
    const bf16 = SafetensorsFile.open(path.join(tmp, 'bf16', 'model.safetensors'));
    for (const name of ['model.embed_tokens.weight', 'model.layers.1.mlp.up_proj.weight', 'model.norm.weight']) {
      const ref = f32.read(name).data as Float32Array;
      expect(f16.info(name)).toMatchObject({ dtype: 'F16', shape: f32.info(name).shape });
      expect(bf16.info(name)).toMatchObject({ dtype: 'BF16', shape: f32.info(name).shape });
      expect(sameBytes(f16.read(name).data, convertF32(ref, 'F16'))).toBe(true);
      expect(sameBytes(bf16.read(name).data, convertF32(ref, 'BF16'))).toBe(true);
      expect(sameBytes(f16.read(name).data, convertF32(ref, 'BF16'))).toBe(false);
    }
  });

  test('a layer does not depend on how many layers there are', () => {
    makeModel({ shape: 'tiny', out: path.join(tmp, 'l1'), seed: 9, layers: 1 });
    makeModel({ shape: 'tiny', out: path.join(tmp, 'l3'), seed: 9, layers: 3 });
    const a = SafetensorsFile.open(path.join(tmp, 'l1', 'model.safetensors'));
    const b = SafetensorsFile.open(path.join(tmp, 'l3', 'model.safetensors'));
    expect(b.names().filter((n) => n.startsWith('model.layers.'))).toHaveLength(27);
    const q = (f: SafetensorsFile, i: number) => f.read(`model.layers.${i}.self_attn.q_proj.weight`).data;
    expect(sameBytes(q(a, 0), q(b, 0))).toBe(true);
    expect(sameBytes(q(b, 1), q(b, 2))).toBe(false);
  });

  test('large models are sharded with an HF index', () => {
    const out = path.join(tmp, 'sharded');
    const res = makeModel({ shape: 'tiny', out, seed: 1, maxSingleFileBytes: 1e6, shardBytes: 1e5 });
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).toBe(false);
    expect(index.metadata.total_size).toBe(res.totalBytes);
    const plan = tensorPlan(resolveShape('tiny'));
    expect(Object.keys(index.weight_map).sort()).toEqual(plan.map((t) => t.name).sort());
    const shards = [...new Set(Object.values(index.weight_map))] as string[];
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    let sum = 0;
    for (const shard of shards) {
      const f = SafetensorsFile.open(path.join(out, shard));
      const bytes = [...f.tensors.values()].reduce((a, t) => a + t.end - t.begin, 0);
      sum += bytes;
      expect(bytes <= 1e5 || f.names().length === 1).toBe(true);
      for (const n of f.names()) expect(index.weight_map[n]).toBe(shard);
    }
    expect(sum).toBe(res.totalBytes);
    // Re-making the folder unsharded removes the shards.
    makeModel({ shape: 'tiny', out, seed: 1 });
    expect(fs.readdirSync(out).filter((f) => f.includes('safetensors'))).toEqual(['model.safetensors']);
  });

  test('side files: config, tokenizer, chat template, generation config', () => {
    const out = path.join(tmp, 'side');
    makeModel({ shape: 'tiny', out, dtype: 'bf16' });
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_key_value_heads: 2,
      tie_word_embeddings: true, torch_dtype: 'bfloat16', vocab_size: 32000 });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'generation_config.json'), 'utf8'))).toEqual({ bos_token_id: 1, eos_token_id: 2 });
    const tok = Tokenizer.fromModelDir(out);
    expect(tok.encode('Hello world!')).toEqual([1, 15043, 3186, 29991]);
    expect(ChatTemplate.fromModelDir(out).render([{ role: 'user', content: 'Hi' }])).toBe('<s>[INST] Hi [/INST]');
    fs.accessSync(path.join(out, 'tokenizer.json'), fs.constants.W_OK);
  });

  test('refuses an --out that is a file', () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    expect(() => makeModel({ shape: 'tiny', out: file })).toThrow(/not a directory/);
  });
});
