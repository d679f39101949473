// gyre convert --to gguf. Without the peer: the header, metadata and tensor data read back with
// our own GGUF reader. With bench/peers/llama-cpp installed (`npm ci` there; CI installs only
// the root): llama.cpp's next-token log-probabilities match our engine's on the same weights.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '../../src/engine/engine';
import {
  convertToGguf, GGML_F16, GGML_F32, GGUF_ALIGNMENT, type GgufHeader, permuteRope, readGgufHeader, readGgufTensor,
} from '../../src/model/gguf';
import { makeModel } from '../../src/model/make_model';
import { halfToFloat, SafetensorsFile } from '../../src/model/safetensors';

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'reference', 'llama-gqa-theta');
const PEER = path.join(ROOT, 'bench', 'peers', 'llama-cpp');
const HAS_PEER = fs.existsSync(path.join(PEER, 'node_modules', 'node-llama-cpp'));

let tmp: string;
let fixture: string;   // llama-gqa-theta (GQA 4/1, rope_theta 1e6, untied) + the Llama-2 tokenizer
let tiny: string;      // gyre make-model --shape tiny (tied embeddings, vocab 32000)

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-gguf-'));
  tiny = path.join(tmp, 'tiny');
  makeModel({ shape: 'tiny', out: tiny, seed: 3 });
  fixture = path.join(tmp, 'fixture');
  fs.mkdirSync(fixture);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURE, f), path.join(fixture, f));
  // Its vocab is 320: the converter keeps the tokenizer's first 320 pieces (specials, bytes, merges).
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tiny, f), path.join(fixture, f));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function convert(model: string, name: string, opts: { dtype?: 'f32' | 'f16'; ropePermute?: boolean } = {}): [string, GgufHeader] {
  const out = path.join(tmp, name);
  return [out, convertToGguf({ model, out, ...opts })];
}

describe('GGUF writer and reader (no llama.cpp needed)', () => {
  test('metadata llama.cpp needs for the llama architecture', () => {
    const [, h] = convert(fixture, 'meta.gguf');
    expect(h.version).toBe(3);
    const m = Object.fromEntries(h.metadata);
    expect(m).toMatchObject({
      'general.architecture': 'llama', 'general.file_type': 0, 'llama.context_length': 512, 'llama.embedding_length': 128,
      'llama.block_count': 3, 'llama.feed_forward_length': 352, 'llama.attention.head_count': 4,
      'llama.attention.head_count_kv': 1, 'llama.rope.freq_base': 1e6, 'llama.rope.dimension_count': 32,
      'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.bos_token_id': 1, 'tokenizer.ggml.eos_token_id': 2,
      'tokenizer.ggml.unknown_token_id': 0, 'llama.vocab_size': 320,
    });
    expect(m['llama.attention.layer_norm_rms_epsilon']).toBeCloseTo(1e-6, 12);
    const tokens = m['tokenizer.ggml.tokens'] as string[];
    const types = m['tokenizer.ggml.token_type'] as number[];
    expect(tokens).toHaveLength(320);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(types.slice(0, 4)).toEqual([2, 3, 3, 6]);
    expect(types[258]).toBe(6);   // <0xFF>
    expect(types[259]).toBe(1);   // the first merge
    expect(m['tokenizer.ggml.scores']).toHaveLength(320);
  });

  test('tensor names, shapes (ne reversed), types and aligned offsets', () => {
    const [, h] = convert(fixture, 'names.gguf');
    const names = h.tensors.map((t) => t.name);
    expect(names).toHaveLength(1 + 3 * 9 + 2);
    expect(names.slice(0, 10)).toEqual(['token_embd.weight', 'blk.0.attn_norm.weight', 'blk.0.attn_q.weight',
      'blk.0.attn_k.weight', 'blk.0.attn_v.weight', 'blk.0.attn_output.weight', 'blk.0.ffn_norm.weight',
      'blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight', 'blk.0.ffn_down.weight']);
    expect(names.slice(-2)).toEqual(['output_norm.weight', 'output.weight']);
    const ne = (n: string) => h.tensors.find((t) => t.name === n)!.ne;
    expect(ne('token_embd.weight')).toEqual([128, 320]);
    expect(ne('blk.0.attn_k.weight')).toEqual([128, 32]);
    expect(ne('blk.0.ffn_down.weight')).toEqual([352, 128]);
    expect(h.tensors.every((t) => t.offset % GGUF_ALIGNMENT === 0 && t.type === GGML_F32)).toBe(true);
    expect(h.dataOffset % GGUF_ALIGNMENT).toBe(0);
  });

  test('data round trip; Q and K rows permuted for llama.cpp rope, per (kv) head', () => {
    const [file, h] = convert(fixture, 'data.gguf');
    const st = SafetensorsFile.open(path.join(fixture, 'model.safetensors'));
    expect(readGgufTensor(file, h, 'token_embd.weight')).toEqual(st.readF32('model.embed_tokens.weight'));
    expect(readGgufTensor(file, h, 'output.weight')).toEqual(st.readF32('lm_head.weight'));
    const k = st.readF32('model.layers.1.self_attn.k_proj.weight');   // [1 head * 32, 128]
    const kg = readGgufTensor(file, h, 'blk.1.attn_k.weight');
    expect(kg).not.toEqual(k);
    // GGUF row 2j+s of a head is HF row s*16+j (pairs interleaved from halves).
    for (const [j, s] of [[0, 0], [0, 1], [5, 1], [15, 0]]) {
      expect(kg.subarray((2 * j + s) * 128, (2 * j + s + 1) * 128)).toEqual(k.subarray((s * 16 + j) * 128, (s * 16 + j + 1) * 128));
    }
    expect(readGgufTensor(file, h, 'blk.1.attn_q.weight')).toEqual(permuteRope(st.readF32('model.layers.1.self_attn.q_proj.weight'), 128, 128, 4));
  });

  test('f16: matrices in half precision, norms in f32', () => {
    const [file, h] = convert(fixture, 'half.gguf', { dtype: 'f16' });
    expect(h.metadata.get('general.file_type')).toBe(1);
    const type = (n: string) => h.tensors.find((t) => t.name === n)!.type;
    expect(type('blk.0.ffn_up.weight')).toBe(GGML_F16);
    expect(type('blk.0.attn_norm.weight')).toBe(GGML_F32);
    const src = SafetensorsFile.open(path.join(fixture, 'model.safetensors')).readF32('model.layers.0.mlp.up_proj.weight');
    const got = readGgufTensor(file, h, 'blk.0.ffn_up.weight');
    let worst = 0;
    for (let i = 0; i < src.length; i++) worst = Math.max(worst, Math.abs(got[i] - src[i]) / Math.max(Math.abs(src[i]), 2 ** -14));
    expect(worst).toBeLessThanOrEqual(2 ** -11);
    expect(halfToFloat(0x3c00)).toBe(1);
  });

  test('without a dtype the file keeps the model\'s precision: an f16 (or bf16) model gives f16, an f32 one f32', () => {
    const half = path.join(tmp, 'tiny-f16');
    makeModel({ shape: 'tiny', out: half, seed: 3, dtype: 'f16' });
    const [, h] = convert(half, 'kept-f16.gguf');
    expect(h.metadata.get('general.file_type')).toBe(1);
    expect(h.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.type).toBe(GGML_F16);
    const [, f] = convert(fixture, 'kept-f32.gguf');
    expect(f.metadata.get('general.file_type')).toBe(0);
  });

  test('tied embeddings: no output tensor (llama.cpp falls back to token_embd)', () => {
    const [, h] = convert(tiny, 'tied.gguf');
    expect(h.tensors.map((t) => t.name)).not.toContain('output.weight');
    expect(h.metadata.get('tokenizer.ggml.tokens')).toHaveLength(32000);
  });

  test('refuses a folder without a tokenizer, and reads only GGUF files', () => {
    const bare = path.join(tmp, 'bare');
    fs.mkdirSync(bare, { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURE, f), path.join(bare, f));
    expect(() => convertToGguf({ model: bare, out: path.join(tmp, 'bare.gguf') })).toThrow(/tokenizer\.json/);
    expect(() => readGgufHeader(path.join(FIXTURE, 'config.json'))).toThrow(/not a GGUF file/);
    const [whole] = convert(tiny, 'whole.gguf');
    const cut = path.join(tmp, 'cut.gguf');
    fs.writeFileSync(cut, fs.readFileSync(whole).subarray(0, 100_000));   // inside the 32000 tokens
    expect(() => readGgufHeader(cut)).toThrow(/truncated GGUF header/);
  });
});

/** max |log p_ours - log p_llama.cpp| over every position and token. */
async function maxLogprobDiff(model: string, gguf: string, ids: number[]): Promise<number> {
  const engine = await Engine.load(model, { backend: 'cpu', numThreads: 1 });
  const vocab = engine.config.vocabSize;
  const ours = await engine.logits(ids);
  await engine.close();
  const refFile = `${gguf}.logprobs`;
  execFileSync(process.execPath, [path.join(PEER, 'logits.mjs'), gguf, ids.join(','), refFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const b = fs.readFileSync(refFile);
  const ref = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  expect(ref.length).toBe(ids.length * vocab);
  let worst = 0;
  for (let p = 0; p < ids.length; p++) {
    const row = ours.subarray(p * vocab, (p + 1) * vocab);
    const max = row.reduce((a, x) => Math.max(a, x), -Infinity);
    const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
    for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(row[v] - lse - ref[p * vocab + v]));
  }
  return worst;
}

const IDS = [1, 5, 100, 200, 300, 319, 7, 9, 11, 13, 17, 19, 23, 42, 64, 128, 256, 3, 299, 150];

const describePeer = HAS_PEER ? describe : describe.skip;
if (!HAS_PEER) console.warn('SKIPPED: llama.cpp logits check (bench/peers/llama-cpp not installed: cd bench/peers/llama-cpp && npm ci)');

describePeer('llama.cpp reads our GGUF and agrees with our engine (bench/peers/llama-cpp)', () => {
  // Measured: f32 ~1e-6 (fixture) / ~4e-6 (tiny); f16 weights vs our f32 ~6e-4. llama.cpp runs with an f32 KV cache here.
  test('f32, fixture (GQA, rope_theta 1e6, untied): within fp32 tolerance 2e-5', async () => {
    const [file] = convert(fixture, 'peer-f32.gguf');
    expect(await maxLogprobDiff(fixture, file, IDS)).toBeLessThan(2e-5);
  });

  test('f32, make-model tiny (tied, vocab 32000): within 2e-5', async () => {
    const [file] = convert(tiny, 'peer-tiny.gguf');
    expect(await maxLogprobDiff(tiny, file, [1, 450, 4996, 17354, 1701, 29916, 2, 31999, 13])).toBeLessThan(2e-5);
  });

  test('f16: within the stated f16 tolerance 5e-3 (weights rounded to 11 bits)', async () => {
    const [file] = convert(fixture, 'peer-f16.gguf', { dtype: 'f16' });
    expect(await maxLogprobDiff(fixture, file, IDS)).toBeLessThan(5e-3);
  });

  test('the check can fail: without the rope permutation llama.cpp disagrees', async () => {
    const [file] = convert(fixture, 'peer-noperm.gguf', { ropePermute: false });
    expect(await maxLogprobDiff(fixture, file, IDS)).toBeGreaterThan(1e-3);
  });
});
