// GGUF v3: the converter from our HF-format safetensors models to llama.cpp's "llama"
// architecture, and a reader for the header (tests, and checking what was written).
//
// File layout (little endian):
//   "GGUF" u32 version=3 | u64 n_tensors | u64 n_kv | kv pairs | tensor infos | pad to 32 | data
//   kv:     string key, u32 type, value            string = u64 length + UTF-8 bytes
//   tensor: string name, u32 n_dims, u64 ne[n_dims] (ne[0] innermost), u32 ggml type, u64 offset
// A HF weight [out, in] (row-major) is ne = [in, out]: the same bytes, dims reversed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertF32, halfToFloat, SafetensorsFile } from './safetensors';

export const GGUF_MAGIC = 0x46554747; // "GGUF"
export const GGUF_ALIGNMENT = 32;

export enum GgufType { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }
export const GGML_F32 = 0;
export const GGML_F16 = 1;

/** A metadata value with its GGUF type; arrays carry their element type. */
export type GgufValue =
  | { type: GgufType.STRING; value: string }
  | { type: GgufType.U32 | GgufType.I32 | GgufType.F32 | GgufType.U64 | GgufType.BOOL; value: number | boolean }
  | { type: GgufType.ARRAY; itemType: GgufType; value: (string | number)[] };

export interface GgufTensorInfo { name: string; ne: number[]; type: number; offset: number }

export interface GgufHeader {
  version: number;
  metadata: Map<string, unknown>;
  tensors: GgufTensorInfo[];
  dataOffset: number;
}

// ---------------------------------------------------------------------------------------------
// Writing

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.chunks.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v: number): void { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v: number): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  f32(v: number): void { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  scalar(type: GgufType, v: string | number | boolean): void {
    switch (type) {
      case GgufType.STRING: return this.str(v as string);
      case GgufType.U32: return this.u32(v as number);
      case GgufType.I32: return this.i32(v as number);
      case GgufType.F32: return this.f32(v as number);
      case GgufType.U64: return this.u64(v as number);
      case GgufType.BOOL: return this.push(Buffer.from([v ? 1 : 0]));
      default: throw new Error(`gguf: cannot write value type ${type}`);
    }
  }
  bytes(): Buffer { return Buffer.concat(this.chunks); }
}

const str = (value: string): GgufValue => ({ type: GgufType.STRING, value });
const u32 = (value: number): GgufValue => ({ type: GgufType.U32, value });
const f32 = (value: number): GgufValue => ({ type: GgufType.F32, value });

const align = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** The header bytes (padded to the alignment) for the given metadata and tensor infos. */
export function encodeGgufHeader(metadata: Map<string, GgufValue>, tensors: GgufTensorInfo[]): Buffer {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC); w.u32(3); w.u64(tensors.length); w.u64(metadata.size);
  for (const [key, v] of metadata) {
    w.str(key); w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.itemType); w.u64(v.value.length);
      for (const item of v.value) w.scalar(v.itemType, item);
    } else {
      w.scalar(v.type, v.value);
    }
  }
  for (const t of tensors) {
    w.str(t.name); w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type); w.u64(t.offset);
  }
  w.push(Buffer.alloc(align(w.length) - w.length));
  return w.bytes();
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Parses the header of a GGUF file (metadata and tensor infos; not the tensor data). Reads
 *  only the file's head, growing it until the header fits. */
export function readGgufHeader(file: string): GgufHeader {
  const size = fs.statSync(file).size;
  for (let want = Math.min(size, 4 << 20); ; want = Math.min(size, want * 8)) {
    const buf = Buffer.alloc(want);
    const fd = fs.openSync(file, 'r');
    try { fs.readSync(fd, buf, 0, want, 0); } finally { fs.closeSync(fd); }
    try {
      return parseHeader(file, buf);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_OUT_OF_RANGE') throw e;   // ran past the bytes read
      if (want === size) throw new Error(`${file}: truncated GGUF header`);
    }
  }
}

function parseHeader(file: string, buf: Buffer): GgufHeader {
  let p = 0;
  const u32 = () => { const v = buf.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(buf.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = buf.toString('utf8', p, p + n); p += n; return s; };
  // Fixed-width scalars: [bytes, reader].
  const fixed: Partial<Record<GgufType, [number, (at: number) => number | boolean]>> = {
    [GgufType.U8]: [1, (at) => buf.readUInt8(at)], [GgufType.I8]: [1, (at) => buf.readInt8(at)],
    [GgufType.BOOL]: [1, (at) => buf.readUInt8(at) !== 0], [GgufType.U16]: [2, (at) => buf.readUInt16LE(at)],
    [GgufType.I16]: [2, (at) => buf.readInt16LE(at)], [GgufType.U32]: [4, (at) => buf.readUInt32LE(at)],
    [GgufType.I32]: [4, (at) => buf.readInt32LE(at)], [GgufType.F32]: [4, (at) => buf.readFloatLE(at)],
    [GgufType.U64]: [8, (at) => Number(buf.readBigUInt64LE(at))], [GgufType.I64]: [8, (at) => Number(buf.readBigInt64LE(at))],
    [GgufType.F64]: [8, (at) => buf.readDoubleLE(at)],
  };
  const value = (type: GgufType): unknown => {
    if (type === GgufType.STRING) return str();
    if (type === GgufType.ARRAY) {
      const itemType = u32();
      return Array.from({ length: u64() }, () => value(itemType));
    }
    const f = fixed[type];
    if (!f) throw new Error(`${file}: unknown GGUF value type ${type}`);
    p += f[0];
    return f[1](p - f[0]);
  };
  if (buf.length < 24 || u32() !== GGUF_MAGIC) throw new Error(`${file}: not a GGUF file`);
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) { const key = str(); metadata.set(key, value(u32())); }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const ne = Array.from({ length: u32() }, u64);
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const alignment = (metadata.get('general.alignment') as number | undefined) ?? GGUF_ALIGNMENT;
  return { version, metadata, tensors, dataOffset: Math.ceil(p / alignment) * alignment };
}

/** One tensor's data as float32 (F32 or F16 tensors). */
export function readGgufTensor(file: string, header: GgufHeader, name: string): Float32Array {
  const t = header.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${file}: no tensor ${name}`);
  const n = t.ne.reduce((a, b) => a * b, 1);
  const bytes = Buffer.alloc(n * (t.type === GGML_F16 ? 2 : 4));
  const fd = fs.openSync(file, 'r');
  try { fs.readSync(fd, bytes, 0, bytes.length, header.dataOffset + t.offset); } finally { fs.closeSync(fd); }
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  if (t.type === GGML_F32) return new Float32Array(ab);
  const h = new Uint16Array(ab);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = halfToFloat(h[i]);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Converting an HF model folder

export interface ConvertOptions {
  model: string;
  out: string;
  dtype?: 'f32' | 'f16';       // default: f16 for an f16 or bf16 model, f32 for an f32 one
  ropePermute?: boolean;       // default true; false only shows that the llama.cpp check can fail
}

/**
 * llama.cpp's llama rope rotates adjacent pairs (x[2i], x[2i+1]); HF Llama rotates halves
 * (x[i], x[i + d/2]). Reorder each head's rows so that HF row (h, s, j) lands at (h, j, s):
 * convert_hf_to_gguf.py's permute(w, n_head): reshape(n_head, 2, d/2, in).swapaxes(1, 2).
 */
export function permuteRope(w: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const out = new Float32Array(w.length);
  const headDim = rows / nHead;
  const half = headDim / 2;
  for (let h = 0; h < nHead; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const src = (h * headDim + s * half + j) * cols;
        const dst = (h * headDim + j * 2 + s) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

function readJson(file: string): Record<string, any> | undefined {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
}

/** tensor name -> the shard that holds it (single file or index.json). */
function openWeights(dir: string): (name: string) => SafetensorsFile | undefined {
  const index = readJson(path.join(dir, 'model.safetensors.index.json'));
  const files = new Map<string, SafetensorsFile>();
  const open = (f: string) => files.get(f) ?? files.set(f, SafetensorsFile.open(path.join(dir, f))).get(f)!;
  if (index) return (name) => (index.weight_map[name] ? open(index.weight_map[name]) : undefined);
  const single = open('model.safetensors');
  return (name) => (single.tensors.has(name) ? single : undefined);
}

/** tokenizer.ggml.* keys from tokenizer.json (SentencePiece-style BPE, as Llama-2 and Mistral). */
function tokenizerMetadata(dir: string, vocab: number, cfg: Record<string, any>): Map<string, GgufValue> {
  const tok = readJson(path.join(dir, 'tokenizer.json'));
  if (!tok) throw new Error(`${dir}: no tokenizer.json (llama.cpp needs the vocabulary in the GGUF)`);
  const tokCfg = readJson(path.join(dir, 'tokenizer_config.json')) ?? {};
  const tokens: string[] = new Array(vocab);
  for (const [piece, id] of Object.entries(tok.model.vocab as Record<string, number>)) if (id < vocab) tokens[id] = piece;
  const special = new Set<number>();
  for (const t of tok.added_tokens ?? []) if (t.id < vocab) { tokens[t.id] = t.content; if (t.special) special.add(t.id); }
  const idOf = (spec: unknown) => {
    const s = typeof spec === 'string' ? spec : (spec as { content?: string } | null)?.content;
    return s === undefined ? undefined : tokens.indexOf(s);
  };
  const unk = idOf(tok.model.unk_token) ?? 0;
  const types = tokens.map((t, id) => {
    if (t === undefined) tokens[id] = `[PAD${id}]`;
    if (id === unk) return 2;                       // unknown
    if (t === undefined) return 5;                  // unused
    if (special.has(id)) return 3;                  // control
    return /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : 1;     // byte : normal
  });
  // SentencePiece BPE: ids follow merge order, so -id ranks merges as the original scores do.
  const scores = tokens.map((_, id) => (types[id] === 1 ? -id : 0));
  const bos = idOf(tokCfg.bos_token) ?? cfg.bos_token_id ?? 1;
  const eos = idOf(tokCfg.eos_token) ?? [cfg.eos_token_id].flat()[0] ?? 2;
  const m = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { type: GgufType.ARRAY, itemType: GgufType.STRING, value: tokens }],
    ['tokenizer.ggml.scores', { type: GgufType.ARRAY, itemType: GgufType.F32, value: scores }],
    ['tokenizer.ggml.token_type', { type: GgufType.ARRAY, itemType: GgufType.I32, value: types }],
    ['tokenizer.ggml.bos_token_id', u32(bos)],
    ['tokenizer.ggml.eos_token_id', u32(eos)],
    ['tokenizer.ggml.unknown_token_id', u32(unk)],
    ['tokenizer.ggml.add_bos_token', { type: GgufType.BOOL, value: tokCfg.add_bos_token ?? true }],
    ['tokenizer.ggml.add_eos_token', { type: GgufType.BOOL, value: tokCfg.add_eos_token ?? false }],
  ]);
  if (typeof tokCfg.chat_template === 'string') m.set('tokenizer.chat_template', str(tokCfg.chat_template));
  return m;
}

interface PlannedTensor extends GgufTensorInfo { hf: string; bytes: number; permuteHeads?: number }

/** Writes the model folder as a GGUF v3 file of llama.cpp's "llama" architecture. */
export function convertToGguf(opts: ConvertOptions): GgufHeader {
  const dir = opts.model;
  const cfg = readJson(path.join(dir, 'config.json'));
  if (!cfg) throw new Error(`${dir}: no config.json`);
  if (!['llama', 'mistral'].includes(cfg.model_type)) throw new Error(`${dir}: model_type ${cfg.model_type} is not llama or mistral`);
  if (cfg.rope_scaling && cfg.rope_scaling.type !== 'linear' && cfg.rope_scaling.rope_type !== 'linear') {
    throw new Error(`${dir}: rope_scaling ${JSON.stringify(cfg.rope_scaling)}: only linear scaling converts`);
  }
  const hidden: number = cfg.hidden_size;
  const heads: number = cfg.num_attention_heads;
  const kvHeads: number = cfg.num_key_value_heads ?? heads;
  const headDim = hidden / heads;
  const vocab: number = cfg.vocab_size;
  const weights = openWeights(dir);
  // Keep the model's precision unless asked: an f16 model written as f32 doubles in size for nothing.
  const embed = weights('model.embed_tokens.weight')?.info('model.embed_tokens.weight').dtype;
  const f16 = (opts.dtype ?? (embed === 'F16' || embed === 'BF16' ? 'f16' : 'f32')) === 'f16';

  const meta = new Map<string, GgufValue>([
    ['general.architecture', str('llama')],
    ['general.name', str(path.basename(path.resolve(dir)))],
    ['general.file_type', u32(f16 ? 1 : 0)],   // ALL_F32 | MOSTLY_F16
    ['general.alignment', u32(GGUF_ALIGNMENT)],
    ['llama.vocab_size', u32(vocab)],
    ['llama.context_length', u32(cfg.max_position_embeddings)],
    ['llama.embedding_length', u32(hidden)],
    ['llama.block_count', u32(cfg.num_hidden_layers)],
    ['llama.feed_forward_length', u32(cfg.intermediate_size)],
    ['llama.attention.head_count', u32(heads)],
    ['llama.attention.head_count_kv', u32(kvHeads)],
    ['llama.rope.freq_base', f32(cfg.rope_theta ?? 10000)],
    ['llama.rope.dimension_count', u32(headDim)],
    ['llama.attention.layer_norm_rms_epsilon', f32(cfg.rms_norm_eps)],
  ]);
  if (cfg.rope_scaling) {
    meta.set('llama.rope.scaling.type', str('linear'));
    meta.set('llama.rope.scaling.factor', f32(cfg.rope_scaling.factor));
  }
  for (const [k, v] of tokenizerMetadata(dir, vocab, cfg)) meta.set(k, v);

  // The plan: names, shapes, types and offsets, before any data is read.
  const plan: PlannedTensor[] = [];
  let offset = 0;
  const add = (name: string, hf: string, required: boolean, permuteHeads?: number) => {
    const file = weights(hf);
    if (!file) { if (required) throw new Error(`${dir}: missing tensor ${hf}`); return; }
    const shape = file.info(hf).shape;
    const type = f16 && shape.length === 2 ? GGML_F16 : GGML_F32;   // norms stay f32, as llama.cpp's converter
    const bytes = shape.reduce((a, b) => a * b, 1) * (type === GGML_F16 ? 2 : 4);
    offset = align(offset);
    plan.push({ name, hf, ne: [...shape].reverse(), type, offset, bytes, permuteHeads });
    offset += bytes;
  };
  add('token_embd.weight', 'model.embed_tokens.weight', true);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const hf = `model.layers.${i}`;
    add(`blk.${i}.attn_norm.weight`, `${hf}.input_layernorm.weight`, true);
    add(`blk.${i}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, true, heads);
    add(`blk.${i}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, true, kvHeads);
    add(`blk.${i}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`, true);
    add(`blk.${i}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`, true);
    add(`blk.${i}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`, true);
    add(`blk.${i}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`, true);
    add(`blk.${i}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`, true);
    add(`blk.${i}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`, true);
  }
  add('output_norm.weight', 'model.norm.weight', true);
  // Tied embeddings: no output tensor; llama.cpp then uses token_embd.
  if (!cfg.tie_word_embeddings) add('output.weight', 'lm_head.weight', true);

  const infos: GgufTensorInfo[] = plan.map(({ name, ne, type, offset: at }) => ({ name, ne, type, offset: at }));
  const header = encodeGgufHeader(meta, infos);
  const tmp = `${opts.out}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, header);
    let pos = 0;
    for (const t of plan) {
      if (t.offset > pos) fs.writeSync(fd, Buffer.alloc(t.offset - pos));
      let data = weights(t.hf)!.readF32(t.hf);
      if (t.permuteHeads && opts.ropePermute !== false) data = permuteRope(data, t.ne[1], t.ne[0], t.permuteHeads);
      const out = t.type === GGML_F16 ? convertF32(data, 'F16') : data;
      fs.writeSync(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      pos = t.offset + t.bytes;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, opts.out);
  return readGgufHeader(opts.out);
}
