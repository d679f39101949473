// Checks a model folder before serving or upload, collecting every problem with the file and
// the field or tensor it concerns. config.json goes through the engine's own parser (the addon's
// readConfig: architecture, fields, GQA divisibility, rope scaling); here we add what the engine
// only finds by loading, or not at all: tensor shapes and dtypes against the config (with the
// int8 layout of `gyre quantize` when config.json says gyre_int8), the shard index against the
// shard files, duplicates, the tokenizer's vocabulary, the chat template.
//
// Memory (for one A10G, or the card of `gpuBytes`): the KV pool the CUDA backend would size, from
// the native plan (planGpuMemory, gyre/gpu_memory.h): budget (fraction x what the card reports) -
// weights as the backend uploads them - the engine's default step buffers - a CUDA-context
// estimate - a margin, in whole 16-token blocks. `a10g` gives it both ways the GPU can hold the
// weights: fp16, and int8 (linear weights 1 byte + a float32 scale per row). An int8 folder is
// reported as int8 only. `weightBytes` is what the files hold.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NativeAddon, NativeModelConfig } from '../engine/native';
import { decoderRegex } from '../engine/tokenizer';
import type { TextLimits } from '../engine/tokenizer_pool';
import { readGenerationConfig } from './generation_config';
import {
  isPlainName, MAX_TOKENIZER_JSON_BYTES, modelFileExists, parseModelJson, readModelFile, readModelJson,
} from './model_file';
import { SafetensorsFile, type TensorInfo } from './safetensors';

/** What an A10G reports as its total memory (gyre/gpu_memory.h kA10gTotalBytes). */
export const A10G_BYTES = 23_028 * 2 ** 20;
export const DEFAULT_MEMORY_FRACTION = 0.9;
/** One conversation of the bench workload: a 960-token prompt and 80 new tokens. */
export const CONVERSATION_TOKENS = 960 + 80;

/** What one way of holding the weights leaves on the GPU. */
export interface GpuMemory {
  weightBytes: number;
  /** The CUDA backend's KV pool in tokens; negative: weights and step buffers alone overflow the budget by that many tokens' bytes. */
  kvCacheTokens: number;
  /** 960 + 80-token conversations whose KV cache fits at once (0 when none). */
  conversations: number;
}

export interface ValidateOptions {
  gpuBytes?: number;
  memoryFraction?: number;
  /** false: a missing tokenizer.json is a warning (an ids-only model, e.g. a merge input). */
  requireTokenizer?: boolean;
  /** Also read every weight and report NaN / Inf values (reads the whole model). */
  checkValues?: boolean;
  /** The limits the template and tokenizer probes run under (default: the serving limits). */
  textLimits?: Partial<TextLimits>;
}

export interface ValidationReport {
  dir: string;
  ok: boolean;
  errors: string[];
  warnings: string[];
  architecture?: string;
  dtype?: string;
  numParameters?: number;
  weightBytes?: number;
  kvBytesPerToken?: number;
  /** The CUDA backend's KV pool in tokens for these weights (int8 for an int8 folder, else fp16); negative: they do not fit. */
  kvCacheTokens?: number;
  gpuBytes: number;
  memoryFraction: number;
  tokenizerVocab?: number;
  chatTemplate?: string;
  /** int8: the files are `gyre quantize` output (config.json quantization_config gyre_int8). */
  quantization?: 'none' | 'int8';
  /** The A10G budget with fp16 and with int8 weights (an int8 folder: int8 only). */
  a10g?: { fp16?: GpuMemory; int8: GpuMemory };
}

/** config.json's quantization_config, when it is Gyre's int8. */
export interface Int8Config {
  quant_method: 'gyre_int8';
  bits: 8;
  group: 'per_output_channel';
  symmetric: true;
  lm_head: boolean;
  source_dtype: string;
}

/** Reads <dir>/config.json's quantization_config; undefined without one (or without config.json). */
export function readQuantizationConfig(dir: string): Record<string, unknown> | undefined {
  const q = readModelJson(dir, 'config.json')?.quantization_config;
  return q && typeof q === 'object' ? q as Record<string, unknown> : undefined;
}

const LINEAR_RE = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** A layer's linear weight (what int8 quantizes): q/k/v/o, gate/up/down. */
export function isLinearWeight(name: string): boolean {
  return LINEAR_RE.test(name);
}

/** The scale tensor of an int8 weight: `<name>_scale`, F32 [rows]. */
export const scaleName = (name: string) => `${name}_scale`;

type ModelConfig = Omit<NativeModelConfig, 'dtype'>;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

/** Tensor name -> shape the forward pass expects (as native/src/model/weights.cc loads them). */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [V, H]], ['model.norm.weight', [H]]]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [V, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}self_attn.q_proj.weight`, [q, H]);
    m.set(`${p}self_attn.k_proj.weight`, [kv, H]);
    m.set(`${p}self_attn.v_proj.weight`, [kv, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, q]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    m.set(`${p}mlp.gate_proj.weight`, [I, H]);
    m.set(`${p}mlp.up_proj.weight`, [I, H]);
    m.set(`${p}mlp.down_proj.weight`, [H, I]);
  }
  return m;
}

interface Located { file: string; info: TensorInfo }

/** Bounds of the shard index (as native/src/model/model_file.h). */
export const MAX_WEIGHT_MAP_ENTRIES = 65536;
export const MAX_SHARDS = 4096;

interface Mismatch { file: string; name: string; got: number[]; want: number[] }

/**
 * When many tensors disagree with config.json, usually one config field is wrong: the config
 * value, the one the weights imply, and the tensor that shows it; undefined when none explains it.
 */
function rootCause(c: ModelConfig, tensors: Map<string, Located>): string | undefined {
  const dim = (name: string, i: number) => tensors.get(name)?.info.shape[i];
  const checks: [string, number, string, number][] = [
    ['hidden_size', c.hiddenSize, 'model.embed_tokens.weight', 1],
    ['vocab_size', c.vocabSize, 'model.embed_tokens.weight', 0],
    ['intermediate_size', c.intermediateSize, 'model.layers.0.mlp.gate_proj.weight', 0],
  ];
  for (const [field, want, name, i] of checks) {
    const got = dim(name, i);
    if (got !== undefined && got !== want) {
      return `${field} is ${want}, but the weights have ${got} (${name} is [${tensors.get(name)!.info.shape.join(', ')}])`;
    }
  }
  const kvRows = dim('model.layers.0.self_attn.k_proj.weight', 0);
  if (kvRows !== undefined && kvRows !== c.numKvHeads * c.headDim && kvRows % c.headDim === 0) {
    return `num_key_value_heads is ${c.numKvHeads}, but the weights have ${kvRows / c.headDim} ` +
      `(model.layers.0.self_attn.k_proj.weight has ${kvRows} rows of head_dim ${c.headDim})`;
  }
  return undefined;
}

/** Every tensor of the folder's weight files, with index/shard agreement checked. Index entries
 *  are checked before any file is opened; only plain names inside the folder are opened. */
function collectTensors(dir: string, errors: string[], warnings: string[]): Map<string, Located> {
  const found = new Map<string, Located>();
  const INDEX = 'model.safetensors.index.json';
  const indexFile = path.join(dir, INDEX);
  const onDisk = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors'));
  let weightMap: Record<string, unknown> | undefined;
  let shards: string[];
  if (modelFileExists(dir, INDEX)) {
    try {
      weightMap = readModelJson(dir, INDEX)!.weight_map as Record<string, unknown> | undefined;
    } catch (e) {
      errors.push((e as Error).message);
      return found;
    }
    if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
      errors.push(`${indexFile}: field 'weight_map' is missing`);
      return found;
    }
    const entries = Object.entries(weightMap);
    if (entries.length > MAX_WEIGHT_MAP_ENTRIES) {
      errors.push(`${indexFile}: field 'weight_map' has ${entries.length} entries (at most ${MAX_WEIGHT_MAP_ENTRIES})`);
      return found;
    }
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of entries) {
      if (!isPlainName(shard)) {
        errors.push(`${indexFile}: weight_map['${name}'] must be a file name in the model folder`);
        continue;
      }
      const names = byShard.get(shard);
      if (names) names.push(name);
      else byShard.set(shard, [name]);
    }
    if (byShard.size > MAX_SHARDS) {
      errors.push(`${indexFile}: field 'weight_map' names ${byShard.size} shard files (at most ${MAX_SHARDS})`);
      return found;
    }
    shards = [...byShard.keys()].sort();
    const listed = new Set(shards);
    for (const extra of onDisk.filter((n) => !listed.has(n))) warnings.push(`${path.join(dir, extra)}: not in the index; it is ignored`);
    for (const shard of shards) {
      if (!modelFileExists(dir, shard)) {
        const names = byShard.get(shard)!;
        errors.push(`${indexFile}: shard '${shard}' (for tensor '${names[0]}'${names.length > 1 ? ` and ${names.length - 1} more` : ''}) is missing`);
      }
    }
    shards = shards.filter((sh) => modelFileExists(dir, sh));
  } else if (onDisk.includes('model.safetensors')) {
    shards = ['model.safetensors'];
    for (const extra of onDisk.filter((n) => n !== 'model.safetensors')) warnings.push(`${path.join(dir, extra)}: ignored (not model.safetensors and no index)`);
  } else {
    errors.push(onDisk.length
      ? `${indexFile}: missing, and the folder has ${onDisk.length} .safetensors files without it`
      : `${dir}: no model.safetensors or model.safetensors.index.json`);
    return found;
  }
  const opened = new Set<string>();
  for (const shard of shards) {
    const file = path.join(dir, shard);
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.openInFolder(dir, shard);
    } catch (e) {
      errors.push((e as Error).message);
      continue;
    }
    opened.add(shard);
    for (const [name, info] of f.tensors) {
      const prev = found.get(name);
      if (prev) errors.push(`${file}: tensor '${name}' is also in ${prev.file}`);
      else found.set(name, { file, info });
      if (weightMap && weightMap[name] !== shard) {
        errors.push(weightMap[name] === undefined
          ? `${indexFile}: does not list tensor '${name}', which ${shard} holds`
          : `${indexFile}: maps tensor '${name}' to ${String(weightMap[name]).slice(0, 200)}, but ${shard} holds it`);
      }
    }
  }
  for (const [name, shard] of Object.entries(weightMap ?? {})) {
    if (!found.has(name) && opened.has(shard as string)) errors.push(`${indexFile}: maps tensor '${name}' to ${shard}, which does not hold it`);
  }
  return found;
}

/** The tokenizer's vocabulary size: the largest id it can produce, plus one. Throws for a JSON
 *  document that is not a Hugging Face tokenizer (naming the field). */
export function tokenizerVocabSize(tokenizerJson: string, file = 'tokenizer.json'): number {
  const t = parseModelJson(tokenizerJson, file) as { model?: { vocab?: unknown }; added_tokens?: unknown } | null;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new Error(`${file}: expected a JSON object`);
  if (typeof t.model !== 'object' || t.model === null || Array.isArray(t.model)) throw new Error(`${file}: field 'model' is missing (not a Hugging Face tokenizer.json)`);
  const vocab = t.model.vocab;
  let max = -1;
  if (Array.isArray(vocab)) max = vocab.length - 1;
  else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab)) if (Number.isSafeInteger(id)) max = Math.max(max, id as number);
  if (t.added_tokens !== undefined && !Array.isArray(t.added_tokens)) throw new Error(`${file}: field 'added_tokens' must be a list`);
  for (const a of (t.added_tokens ?? []) as { id?: unknown }[]) if (Number.isSafeInteger(a?.id)) max = Math.max(max, a.id as number);
  return max + 1;
}

function checkTokenizer(dir: string, c: ModelConfig, r: ValidationReport, required: boolean): boolean {
  const file = path.join(dir, 'tokenizer.json');
  if (!modelFileExists(dir, 'tokenizer.json')) {
    (required ? r.errors : r.warnings).push(`${file}: missing (text prompts and chat need the Hugging Face tokenizer.json)`);
    return false;
  }
  try {
    const text = readModelFile(dir, 'tokenizer.json', MAX_TOKENIZER_JSON_BYTES);
    r.tokenizerVocab = tokenizerVocabSize(text, file);
    const regex = decoderRegex((JSON.parse(text) as { decoder?: unknown }).decoder);
    if (regex !== undefined) {
      r.errors.push(`${file}: field 'decoder' uses the regex ${JSON.stringify(regex.slice(0, 40))}; decoding runs on the ` +
        'server\'s event loop, where a regex is not bounded, so only String patterns are accepted there');
      return false;
    }
  } catch (e) {
    r.errors.push((e as Error).message);
    return false;
  }
  if (r.tokenizerVocab > c.vocabSize) {
    r.errors.push(`${file}: vocabulary of ${r.tokenizerVocab} tokens does not fit the embedding ` +
      `(model.embed_tokens.weight has ${c.vocabSize} rows, config.json vocab_size)`);
  }
  return true;
}

/** Whether chat requests have a template: tokenizer_config.json's, or a built-in one. */
async function checkChatTemplate(dir: string, r: ValidationReport): Promise<boolean> {
  const file = path.join(dir, 'tokenizer_config.json');
  let source: string | undefined;
  try {
    const t = readModelJson(dir, 'tokenizer_config.json')?.chat_template;
    source = typeof t === 'string' ? t : Array.isArray(t) ? (t.find((x) => x?.name === 'default') ?? t[0])?.template : undefined;
  } catch (e) {
    r.errors.push((e as Error).message);
    return false;
  }
  const { ChatTemplate, builtinTemplateFor } = await import('../engine/chat_template');
  if (source) {
    try {
      new ChatTemplate(source);
      r.chatTemplate = `${file} (chat_template)`;
      return true;
    } catch (e) {
      r.errors.push(`${file}: field 'chat_template': ${(e as Error).message}`);
      return false;
    }
  }
  const builtin = builtinTemplateFor(readModelJson(dir, 'config.json') ?? {});
  if (!builtin) {
    r.warnings.push(`${file}: no chat_template and no built-in one for this architecture; chat requests are refused`);
    return false;
  }
  r.chatTemplate = `built-in ${builtin}`;
  r.warnings.push(`${file}: no chat_template; chat requests use the built-in ${builtin} template`);
  return true;
}

/** A conversation every chat template should render (no system turn: some templates refuse one). */
const SAMPLE_CONVERSATION = [
  { role: 'user', content: 'Hello! What is 2+2?' },
  { role: 'assistant', content: '4.' },
  { role: 'user', content: 'And times 3?' },
];

/** Texts that make a backtracking regex blow up: runs of one character class, then a character
 *  that breaks the match: short (exponential patterns), and a few long (polynomial ones). */
const LONG_PROBES = ['a', ' ', '0', '\n', 'ab'];

export function tokenizerProbes(): string[] {
  const probes: string[] = [];
  for (const c of ['a', 'A', '0', ' ', '\t', '\n', '.', '-', 'ab', 'é', '中', '😀']) {
    const run = (n: number) => c.repeat(Math.ceil(n / c.length));
    probes.push(`${run(48)}!`, `${run(48)}\u0000`);
    if (LONG_PROBES.includes(c)) probes.push(`${run(4096)}!`);
  }
  return probes;
}

/** Runs the chat template on a sample conversation and the tokenizer on adversarial probes, in a
 *  worker process under the serving limits (GYRE_TEXT_TIMEOUT_MS, GYRE_TEXT_MEMORY_MB): what
 *  exceeds them here would take a server's worker down on a request. */
async function probeText(dir: string, r: ValidationReport, chat: boolean, limits?: Partial<TextLimits>): Promise<void> {
  const { TokenizerPool, TextLimitError } = await import('../engine/tokenizer_pool');
  const { ChatTemplateError } = await import('../engine/chat_template');
  const pool = new TokenizerPool(dir, { ...limits, size: 1 });
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  try {
    if (chat) {
      try {
        await pool.encodeChat(SAMPLE_CONVERSATION);
      } catch (e) {
        const where = r.chatTemplate?.startsWith('built-in') ? `the ${r.chatTemplate} chat template` : `${path.join(dir, 'tokenizer_config.json')}: field 'chat_template'`;
        if (e instanceof ChatTemplateError) r.warnings.push(`${where} refused a sample user/assistant/user conversation: ${e.message}`);
        else if (e instanceof TextLimitError) r.errors.push(`${where}: rendering a 3-message conversation: ${e.message}`);
        else r.errors.push(`${tokenizerFile}: ${(e as Error).message}`);
        if (!(e instanceof ChatTemplateError)) return;
      }
    }
    for (const probe of tokenizerProbes()) {
      try {
        await pool.encode(probe, { decode: true });
      } catch (e) {
        const what = `${JSON.stringify(probe.slice(0, 2))} x ${probe.length - 1} + ${JSON.stringify(probe.slice(-1))}`;
        r.errors.push(`${tokenizerFile}: tokenizing the probe ${what}: ${(e as Error).message}`);
        return;
      }
    }
  } finally {
    await pool.close();
  }
}

/** Validates a local model folder. Never throws for a bad model: problems land in errors. */
export async function validateModel(dir: string, opts: ValidateOptions = {}): Promise<ValidationReport> {
  const r: ValidationReport = {
    dir, ok: false, errors: [], warnings: [], gpuBytes: opts.gpuBytes ?? A10G_BYTES,
    memoryFraction: opts.memoryFraction ?? DEFAULT_MEMORY_FRACTION,
  };
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    r.errors.push(`${dir}: not a folder`);
    return r;
  }
  let c: ModelConfig;
  let addon: NativeAddon;
  try {
    const { loadAddon } = await import('../engine/native');
    addon = loadAddon();
    c = addon.readConfig(dir);
  } catch (e) {
    r.errors.push((e as Error).message);
    return r;
  }
  r.architecture = c.architecture;
  let quant: Record<string, unknown> | undefined;
  try {
    quant = readQuantizationConfig(dir);
  } catch (e) {
    r.errors.push(`${path.join(dir, 'config.json')}: not valid JSON (${(e as Error).message})`);
  }
  const int8 = quant?.quant_method === 'gyre_int8';
  const int8LmHead = int8 && quant?.lm_head === true;
  r.quantization = int8 ? 'int8' : 'none';
  const tensors = collectTensors(dir, r.errors, r.warnings);
  const expected = expectedTensors(c);
  if (int8LmHead && !expected.has('lm_head.weight')) expected.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  const dtypes = new Set<string>();
  let params = 0, bytes = 0;
  const used = new Set<string>();
  const mismatches: Mismatch[] = [];
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) {
      if (tensors.size) r.errors.push(`${dir}: tensor '${name}' is missing (config.json expects shape [${shape.join(', ')}])`);
      continue;
    }
    used.add(name);
    const quantized = int8 && (isLinearWeight(name) || (int8LmHead && name === 'lm_head.weight'));
    if (quantized) {
      if (t.info.dtype !== 'I8') r.errors.push(`${t.file}: tensor '${name}' has dtype ${t.info.dtype}; expected I8 (config.json quantization_config is gyre_int8)`);
      const sName = scaleName(name);
      const sc = tensors.get(sName);
      used.add(sName);
      if (!sc) {
        if (tensors.size) r.errors.push(`${dir}: tensor '${sName}' is missing (the F32 [${shape[0]}] scales of the int8 weight '${name}')`);
      } else if (sc.info.dtype !== 'F32' || sc.info.shape.join() !== String(shape[0])) {
        r.errors.push(`${sc.file}: tensor '${sName}' is ${sc.info.dtype} [${sc.info.shape.join(', ')}], expected F32 [${shape[0]}]`);
      } else {
        bytes += sc.info.end - sc.info.begin;
      }
    } else if (t.info.dtype === 'I8') {
      r.errors.push(`${t.file}: tensor '${name}' has dtype I8, but ` + (int8
        ? 'only the layers\' linear weights (and the LM head with quantization_config.lm_head) are int8'
        : 'config.json has no quantization_config (gyre_int8); write int8 models with `gyre quantize`'));
    } else {
      if (!FLOAT_DTYPES.has(t.info.dtype)) r.errors.push(`${t.file}: tensor '${name}' has dtype ${t.info.dtype}; expected F32, F16 or BF16`);
      dtypes.add(t.info.dtype);
    }
    if (t.info.shape.join() !== shape.join()) mismatches.push({ file: t.file, name, got: t.info.shape, want: shape });
    const n = t.info.shape.reduce((a, b) => a * b, 1);
    params += n;
    bytes += t.info.end - t.info.begin;
  }
  const cause = mismatches.length > 1 ? rootCause(c, tensors) : undefined;
  if (cause) {
    const m = mismatches[0];
    r.errors.push(`${path.join(dir, 'config.json')}: ${cause}; ${mismatches.length} tensors disagree with config.json, ` +
      `e.g. '${m.name}' has shape [${m.got.join(', ')}], expected [${m.want.join(', ')}]`);
  } else {
    for (const m of mismatches) {
      r.errors.push(`${m.file}: tensor '${m.name}' has shape [${m.got.join(', ')}], expected [${m.want.join(', ')}] from config.json`);
    }
  }
  if (opts.checkValues) checkValues(tensors, used, r);
  const unused = [...tensors.keys()].filter((n) => !used.has(n) && !expected.has(n));
  if (unused.length) r.warnings.push(`${unused.length} tensors are not used and are ignored (e.g. '${unused[0]}')`);
  if (dtypes.size > 1) r.warnings.push(`mixed weight dtypes: ${[...dtypes].join(', ')}`);
  r.dtype = (int8 ? ['I8', ...dtypes] : [...dtypes]).join('+').toLowerCase() || undefined;
  r.numParameters = params;
  r.weightBytes = bytes;
  const plan = (asInt8: boolean) => gpuMemory(addon, dir, { int8: asInt8, int8LmHead: asInt8 && int8LmHead }, r.gpuBytes, r.memoryFraction);
  try {
    const int8Way = plan(true);
    r.a10g = int8 ? { int8: int8Way } : { fp16: plan(false), int8: int8Way };
  } catch (e) {
    r.errors.push((e as Error).message);
    return r;
  }
  r.kvBytesPerToken = addon.planGpuMemory({ modelDir: dir }).kvBytesPerToken;
  r.kvCacheTokens = (r.a10g.fp16 ?? r.a10g.int8).kvCacheTokens;
  if (r.kvCacheTokens < c.maxPositionEmbeddings) {
    r.warnings.push(`on a ${(r.gpuBytes / 2 ** 30).toFixed(1)} GiB GPU at fraction ${r.memoryFraction}, the KV cache ` +
      `holds ${Math.max(0, r.kvCacheTokens)} tokens, less than one ${c.maxPositionEmbeddings}-token context` +
      (!int8 && r.a10g.int8.kvCacheTokens >= c.maxPositionEmbeddings
        ? `; with 8-bit weights (--quantization int8) it holds ${r.a10g.int8.kvCacheTokens}` : ''));
  }
  let generationOk = true;
  try {
    r.warnings.push(...readGenerationConfig(dir, c.vocabSize).warnings);
  } catch (e) {
    r.errors.push((e as Error).message);
    generationOk = false;   // the tokenizer reads it too: no probe
  }
  const chat = await checkChatTemplate(dir, r);
  if (checkTokenizer(dir, c, r, opts.requireTokenizer ?? true) && generationOk) await probeText(dir, r, chat, opts.textLimits);
  r.ok = r.errors.length === 0;
  return r;
}

/** NaN / Inf in the weights the model uses: each tensor that holds any, with a count and the
 *  first index (a NaN embedding row otherwise loads and produces token 0 for ever). */
function checkValues(tensors: Map<string, Located>, used: Set<string>, r: ValidationReport): void {
  const files = new Map<string, SafetensorsFile>();
  for (const name of [...used].sort()) {
    const t = tensors.get(name)!;
    try {
      let f = files.get(t.file);
      if (!f) files.set(t.file, f = SafetensorsFile.open(t.file));
      const { count, first } = f.countNonFinite(name);
      if (count) r.errors.push(`${t.file}: tensor '${name}' holds ${count} NaN or infinite values (the first at element ${first})`);
    } catch (e) {
      r.errors.push((e as Error).message);
    }
  }
}

/** The CUDA backend's KV pool for the model of `dir` on a card of gpuBytes (the native plan). */
export function gpuMemory(addon: NativeAddon, dir: string, weights: { int8: boolean; int8LmHead?: boolean },
                          gpuBytes = A10G_BYTES, memoryFraction = DEFAULT_MEMORY_FRACTION): GpuMemory {
  const p = addon.planGpuMemory({ modelDir: dir }, { ...weights, totalBytes: gpuBytes, gpuMemoryFraction: memoryFraction });
  const kvCacheTokens = p.kvBytes < 0 ? Math.floor(p.kvBytes / p.kvBytesPerToken) : p.kvTokens;
  return { weightBytes: p.weightBytes, kvCacheTokens, conversations: Math.max(0, Math.floor(kvCacheTokens / CONVERSATION_TOKENS)) };
}

/** A short human summary of a report (one line per fact, then every problem). */
export function formatReport(r: ValidationReport): string {
  const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
  const lines = [`${r.dir}: ${r.ok ? 'OK' : `${r.errors.length} error(s)`}`];
  if (r.architecture) lines.push(`  architecture   ${r.architecture}, ${r.dtype ?? '?'}, ${(r.numParameters ?? 0).toLocaleString('en-US')} parameters`);
  if (r.weightBytes !== undefined) lines.push(`  weights        ${gb(r.weightBytes)}`);
  if (r.kvBytesPerToken !== undefined) {
    lines.push(`  kv cache       ${r.kvBytesPerToken.toLocaleString('en-US')} bytes/token (fp16); the pool the CUDA backend sizes ` +
      `on ${r.gpuBytes === A10G_BYTES ? 'an A10G' : `a ${gb(r.gpuBytes)} GPU`}: ${gb(r.gpuBytes)} x ${r.memoryFraction} - weights - step buffers - CUDA context`);
  }
  for (const [way, m] of Object.entries(r.a10g ?? {})) {
    if (!m) continue;
    const fits = m.kvCacheTokens > 0
      ? `${m.kvCacheTokens.toLocaleString('en-US')} KV tokens, ${m.conversations.toLocaleString('en-US')} conversations of 960+80 tokens`
      : 'does not fit';
    lines.push(`  ${r.gpuBytes === A10G_BYTES ? 'A10G' : 'GPU '} ${way.padEnd(9)} weights ${gb(m.weightBytes)}: ${fits}`);
  }
  if (r.tokenizerVocab !== undefined) lines.push(`  tokenizer      ${r.tokenizerVocab} tokens`);
  if (r.chatTemplate) lines.push(`  chat template  ${r.chatTemplate}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  for (const e of r.errors) lines.push(`  error: ${e}`);
  return lines.join('\n');
}
