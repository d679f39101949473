// Writes a random-weight model folder in Hugging Face format: config.json, model.safetensors
// (or shards + index), tokenizer.json, tokenizer_config.json, generation_config.json.
// Weights are a pure function of (seed, tensor name), so a layer's weights do not depend on
// how many layers there are, and the same seed always gives the same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAddon } from '../engine/native';
import { Progress, type ProgressOptions } from './progress';
import { convertF32, DType, tensorBytes, TensorSpec, writeSafetensors } from './safetensors';

export interface ShapeSpec {
  arch: 'llama' | 'mistral';
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  maxPos: number;
  eps: number;
  ropeTheta: number;
  tied: boolean;
  slidingWindow?: number;
}

/** The shapes known by name: the native table (gyre/shapes.h, through the addon). */
export type ShapeName = string;
export function shapeNames(): ShapeName[] {
  return loadAddon().shapeNames();
}

export type WeightDType = 'f32' | 'f16' | 'bf16';

export interface MakeModelOptions {
  shape: ShapeName;
  out: string;
  layers?: number;
  dtype?: WeightDType;
  seed?: number;
  scale?: number;
  /** Above this many bytes of weights, write shards (default 4 GB) ... */
  maxSingleFileBytes?: number;
  /** ... of at most this size each (default 2 GB; a larger single tensor gets its own shard). */
  shardBytes?: number;
  /** Progress lines (or a bar on a TTY) while the weights are written; default none. */
  progress?: ProgressOptions;
}

export interface MakeModelResult {
  files: string[];
  totalBytes: number;
}

const SAFE_DTYPE: Record<WeightDType, DType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const TORCH_DTYPE: Record<WeightDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };
const ASSETS = path.resolve(__dirname, '..', '..', 'models');

export function resolveShape(name: ShapeName, layers?: number): ShapeSpec {
  if (layers !== undefined && (!Number.isInteger(layers) || layers < 1)) throw new Error(`--layers must be a positive integer`);
  const c = loadAddon().shapeConfig(name);  // throws naming the known shapes
  return {
    arch: c.architecture === 'MistralForCausalLM' ? 'mistral' : 'llama',
    hidden: c.hiddenSize, layers: layers ?? c.numLayers, heads: c.numHeads, kvHeads: c.numKvHeads,
    intermediate: c.intermediateSize, vocab: c.vocabSize, maxPos: c.maxPositionEmbeddings,
    eps: Math.fround(1e-5) === c.rmsNormEps ? 1e-5 : c.rmsNormEps, ropeTheta: c.ropeTheta, tied: c.tieWordEmbeddings,
    ...(c.slidingWindow ? { slidingWindow: c.slidingWindow } : {}),
  };
}

export function hfConfig(s: ShapeSpec, dtype: WeightDType): Record<string, unknown> {
  const mistral = s.arch === 'mistral';
  return {
    architectures: [mistral ? 'MistralForCausalLM' : 'LlamaForCausalLM'],
    model_type: s.arch,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: s.maxPos,
    rms_norm_eps: s.eps,
    rope_theta: s.ropeTheta,
    ...(mistral ? { sliding_window: s.slidingWindow ?? null } : { rope_scaling: null, attention_bias: false, pretraining_tp: 1 }),
    attention_dropout: 0.0,
    initializer_range: 0.02,
    tie_word_embeddings: s.tied,
    vocab_size: s.vocab,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
  };
}

interface PlannedTensor { name: string; shape: number[]; norm: boolean }

/** Every tensor, in the order written. */
export function tensorPlan(s: ShapeSpec): PlannedTensor[] {
  const headDim = s.hidden / s.heads;
  const t = (name: string, shape: number[], norm = false) => ({ name, shape, norm });
  const out = [t('model.embed_tokens.weight', [s.vocab, s.hidden])];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      t(`${p}input_layernorm.weight`, [s.hidden], true),
      t(`${p}self_attn.q_proj.weight`, [s.heads * headDim, s.hidden]),
      t(`${p}self_attn.k_proj.weight`, [s.kvHeads * headDim, s.hidden]),
      t(`${p}self_attn.v_proj.weight`, [s.kvHeads * headDim, s.hidden]),
      t(`${p}self_attn.o_proj.weight`, [s.hidden, s.heads * headDim]),
      t(`${p}post_attention_layernorm.weight`, [s.hidden], true),
      t(`${p}mlp.gate_proj.weight`, [s.intermediate, s.hidden]),
      t(`${p}mlp.up_proj.weight`, [s.intermediate, s.hidden]),
      t(`${p}mlp.down_proj.weight`, [s.hidden, s.intermediate]),
    );
  }
  out.push(t('model.norm.weight', [s.hidden], true));
  if (!s.tied) out.push(t('lm_head.weight', [s.vocab, s.hidden]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Random numbers: mulberry32 (a 32-bit splitmix-style generator) + Box–Muller.

function hashName(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x85ebca6b);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const CHUNK = 1 << 20; // floats per chunk written
// Local bindings: global lookups are slow inside vm contexts (jest), and this loop is hot.
const { cos, imul, log, PI, sin, sqrt } = Math;

/** Chunks of N(mean, std) floats, deterministic in (seed, name). */
function* gaussianChunks(seed: number, name: string, count: number, mean: number, std: number,
                         dtype: WeightDType): Generator<ArrayBufferView> {
  let state = hashName(seed, name);
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let z = state;
    z = imul(z ^ (z >>> 15), z | 1);
    z ^= z + imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0);
  };
  const f32 = new Float32Array(Math.min(CHUNK, count + (count & 1)));
  const half = dtype === 'f32' ? undefined : new Uint16Array(f32.length);
  for (let done = 0; done < count; done += f32.length) {
    const n = Math.min(f32.length, count - done);
    for (let i = 0; i < n; i += 2) {
      const u1 = (next() + 1) / 4294967296; // (0, 1]
      const u2 = next() / 4294967296;
      const r = std * sqrt(-2 * log(u1));
      f32[i] = mean + r * cos(2 * PI * u2);
      f32[i + 1] = mean + r * sin(2 * PI * u2);
    }
    if (!half) yield f32.subarray(0, n);
    else yield convertF32(f32.subarray(0, n), SAFE_DTYPE[dtype] as 'F16' | 'BF16', half).subarray(0, n);
  }
}

// ---------------------------------------------------------------------------------------------

function groupShards(specs: TensorSpec[], shardBytes: number): TensorSpec[][] {
  const shards: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let size = 0;
  for (const s of specs) {
    const n = tensorBytes(s);
    if (cur.length && size + n > shardBytes) { shards.push(cur); cur = []; size = 0; }
    cur.push(s);
    size += n;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

/** The chunks of gen, counted into progress as they are written. */
function* counted(gen: Generator<ArrayBufferView>, progress?: Progress): Generator<ArrayBufferView> {
  for (const chunk of gen) {
    yield chunk;
    progress?.add(chunk.byteLength);
  }
}

export function makeModel(opts: MakeModelOptions): MakeModelResult {
  const spec = resolveShape(opts.shape, opts.layers);
  const dtype = opts.dtype ?? 'f32';
  if (!(dtype in SAFE_DTYPE)) throw new Error(`unknown dtype ${dtype} (f32, f16, bf16)`);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer`);
  const scale = opts.scale ?? 1;
  if (!Number.isFinite(scale)) throw new Error(`--scale must be a number`);
  if (fs.existsSync(opts.out) && !fs.statSync(opts.out).isDirectory()) throw new Error(`${opts.out} exists and is not a directory`);
  fs.mkdirSync(opts.out, { recursive: true });

  const specs: TensorSpec[] = tensorPlan(spec).map((t) => ({
    name: t.name,
    dtype: SAFE_DTYPE[dtype],
    shape: t.shape,
    data: () => counted(gaussianChunks(seed, t.name, t.shape.reduce((a, b) => a * b, 1),
      t.norm ? 1 : 0, t.norm ? 0.1 : 0.02 * scale, dtype), progress),
  }));
  const totalBytes = specs.reduce((a, s) => a + tensorBytes(s), 0);
  const progress = opts.progress ? new Progress('make-model', totalBytes, { out: opts.out, shape: opts.shape }, opts.progress) : undefined;
  const metadata = { format: 'pt' };
  const files: string[] = [];
  // Remove weights of an earlier run so a folder never holds both layouts.
  for (const f of fs.readdirSync(opts.out)) {
    if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f)) fs.rmSync(path.join(opts.out, f));
  }
  if (totalBytes <= (opts.maxSingleFileBytes ?? 4 * 2 ** 30)) {
    writeSafetensors(path.join(opts.out, 'model.safetensors'), specs, metadata);
    files.push('model.safetensors');
  } else {
    const shards = groupShards(specs, opts.shardBytes ?? 2 * 2 ** 30);
    const weightMap: Record<string, string> = {};
    shards.forEach((group, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      writeSafetensors(path.join(opts.out, file), group, metadata);
      for (const s of group) weightMap[s.name] = file;
      files.push(file);
    });
    writeJson(path.join(opts.out, 'model.safetensors.index.json'), { metadata: { total_size: totalBytes }, weight_map: weightMap });
    files.push('model.safetensors.index.json');
  }
  writeSideFiles(opts.out, spec, dtype);
  progress?.finish({ ok: true });
  return { files, totalBytes };
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

function writeSideFiles(out: string, spec: ShapeSpec, dtype: WeightDType): void {
  const mistral = spec.arch === 'mistral';
  writeJson(path.join(out, 'config.json'), hfConfig(spec, dtype));
  // Copied files keep the source's mode; the result should be writable like the rest.
  const tokenizer = path.join(out, 'tokenizer.json');
  fs.rmSync(tokenizer, { force: true });
  fs.copyFileSync(path.join(ASSETS, 'tokenizers', `${mistral ? 'mistral' : 'llama-2'}.tokenizer.json`), tokenizer);
  fs.chmodSync(tokenizer, 0o644);
  writeJson(path.join(out, 'tokenizer_config.json'), {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: spec.maxPos,
    tokenizer_class: 'LlamaTokenizer',
    chat_template: fs.readFileSync(path.join(ASSETS, 'chat-templates',
      `${mistral ? 'mistral-instruct' : 'llama-2-chat'}.jinja`), 'utf8'),
  });
  writeJson(path.join(out, 'generation_config.json'), { bos_token_id: 1, eos_token_id: 2 });
}
