// 8-bit weights written once: `gyre quantize` (and `gyre upload --quantize int8`). Every layer's
// linear weight (q/k/v/o, gate/up/down; and the LM head when asked) becomes
//   <name>          I8  [out, in]
//   <name>_scale    F32 [out]        W[o, k] = q[o, k] * scale[o]
// quantized by the addon's quantizeInt8, the very function the engine quantizes at load with, so
// loading these files gives the same weights bit for bit. Embeddings and norms keep their dtype.
// config.json gets quantization_config {quant_method: gyre_int8, ...}; the other non-weight
// files (tokenizer, chat template, generation config) are copied. One tensor at a time is in
// memory; the output is one model.safetensors, or shards + index above 4 GB (as make-model).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MANIFEST_NAME } from './manifest';
import { Progress, type ProgressOptions } from './progress';
import { SafetensorsFile, type TensorInfo, type TensorSpec, tensorBytes, writeSafetensors } from './safetensors';
import { formatReport, type Int8Config, isLinearWeight, scaleName, validateModel, type ValidationReport } from './validate';

export interface QuantizeOptions {
  /** Quantize the LM head too (default false). A tied model gets an explicit int8 lm_head.weight. */
  quantizeLmHead?: boolean;
  /** Above this many bytes of weights, write shards (default 4 GB) ... */
  maxSingleFileBytes?: number;
  /** ... of at most this size each (default 2 GB; a larger single tensor gets its own shard). */
  shardBytes?: number;
  progress?: ProgressOptions;
}

export interface QuantizeResult {
  outDir: string;
  files: string[];             // weight files written (and the index)
  quantized: string[];         // tensors now int8
  sourceBytes: number;         // weight bytes read
  totalBytes: number;          // weight bytes written
  config: Int8Config;
  report: ValidationReport;    // of the output folder
}

type FloatDType = 'F32' | 'F16' | 'BF16';
const FLOAT = new Set(['F32', 'F16', 'BF16']);
/** Weight files of other formats: never copied next to int8 safetensors. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|onnx)$/;

interface Source { st: SafetensorsFile; name: string; info: TensorInfo }

/** The source's tensors, shard by shard (sorted), each in its file's order. */
function sourceTensors(dir: string): Source[] {
  const index = path.join(dir, 'model.safetensors.index.json');
  const shards = fs.existsSync(index)
    ? [...new Set(Object.values((JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map))].sort()
    : ['model.safetensors'];
  return shards.flatMap((shard) => {
    const st = SafetensorsFile.open(path.join(dir, shard));
    return st.names().map((name) => ({ st, name, info: st.info(name) }));
  });
}

/** Quantizes a float model folder into outDir (which must not exist, or be empty). */
export async function quantizeModel(modelDir: string, outDir: string, opts: QuantizeOptions = {}): Promise<QuantizeResult> {
  if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) throw new Error(`${modelDir}: not a folder`);
  if (path.resolve(modelDir) === path.resolve(outDir)) throw new Error('--out must differ from --model');
  if (fs.existsSync(outDir) && (!fs.statSync(outDir).isDirectory() || fs.readdirSync(outDir).length)) {
    throw new Error(`${outDir}: exists and is not empty (give a new folder for the int8 model)`);
  }
  const source = await validateModel(modelDir, { requireTokenizer: false });
  if (source.quantization === 'int8') {
    throw new Error(`${modelDir}: already int8 (config.json quantization_config is gyre_int8); quantize the float model instead`);
  }
  if (!source.ok) throw new Error(`the model is not valid:\n${formatReport(source)}`);
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;

  const tensors = sourceTensors(modelDir);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const quantizeLmHead = opts.quantizeLmHead ?? false;
  const lmHead = byName.get('lm_head.weight') ?? (quantizeLmHead ? byName.get('model.embed_tokens.weight') : undefined);
  const toQuantize = (name: string) => isLinearWeight(name) || (quantizeLmHead && name === 'lm_head.weight');
  for (const t of tensors) {
    if (toQuantize(t.name) && !FLOAT.has(t.info.dtype)) {
      throw new Error(`${t.st.path}: tensor '${t.name}' has dtype ${t.info.dtype}; gyre quantize reads F32, F16 or BF16 weights`);
    }
    if (toQuantize(t.name) && t.info.shape.length !== 2) {
      throw new Error(`${t.st.path}: tensor '${t.name}' has shape [${t.info.shape.join(', ')}]; expected a 2-D weight`);
    }
  }
  const sourceDtypes = [...new Set(tensors.filter((t) => toQuantize(t.name)).map((t) => t.info.dtype))];

  const { loadAddon } = await import('../engine/native');
  const addon = loadAddon();
  if (typeof addon.quantizeInt8 !== 'function') throw new Error('this build of the addon has no quantizeInt8; rebuild it (npm run build:native)');

  const sourceBytes = tensors.reduce((n, t) => n + t.info.end - t.info.begin, 0);
  const progress = new Progress('quantize', sourceBytes, { model: modelDir, out: outDir }, opts.progress);
  // A weight's scales are written right after it: the weight's generator leaves them here.
  const scales = new Map<string, Float32Array>();
  const quantize = (src: Source) => {
    const { data } = src.st.read(src.name);
    const [rows, cols] = src.info.shape;
    const r = addon.quantizeInt8(new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      src.info.dtype as FloatDType, rows, cols);
    if (r.q.length !== rows * cols || r.scale.length !== rows) {
      throw new Error(`quantizeInt8 returned ${r.q.length} values and ${r.scale.length} scales for '${src.name}' [${rows}, ${cols}]`);
    }
    return r;
  };
  const int8Specs = (name: string, src: Source): TensorSpec[] => [
    {
      name, dtype: 'I8', shape: src.info.shape,
      data: () => {
        const r = quantize(src);
        scales.set(name, r.scale);
        progress.add(src.info.end - src.info.begin);
        return [r.q];
      },
    },
    {
      name: scaleName(name), dtype: 'F32', shape: [src.info.shape[0]],
      data: () => {
        const s = scales.get(name) ?? quantize(src).scale;
        scales.delete(name);
        return [s];
      },
    },
  ];
  const specs: TensorSpec[] = [];
  const quantized: string[] = [];
  for (const t of tensors) {
    if (toQuantize(t.name)) {
      specs.push(...int8Specs(t.name, t));
      quantized.push(t.name);
    } else {
      specs.push({
        name: t.name, dtype: t.info.dtype, shape: t.info.shape,
        data: () => { const { data } = t.st.read(t.name); progress.add(t.info.end - t.info.begin); return [data]; },
      });
    }
  }
  if (quantizeLmHead && !byName.has('lm_head.weight')) {
    // Tied embeddings: the LM head gets its own int8 copy; the embedding stays float.
    if (!lmHead) throw new Error(`${modelDir}: no lm_head.weight or model.embed_tokens.weight to quantize`);
    specs.push(...int8Specs('lm_head.weight', lmHead));
    quantized.push('lm_head.weight');
  }

  const int8: Int8Config = {
    quant_method: 'gyre_int8', bits: 8, group: 'per_output_channel', symmetric: true, lm_head: quantizeLmHead,
    source_dtype: sourceDtypes.join('+'),
  };
  fs.mkdirSync(outDir, { recursive: true });
  let done = false;
  try {
    const { files, totalBytes } = writeWeights(outDir, specs, opts);
    progress.finish({ ok: true, total_out_bytes: totalBytes });
    done = true;
    for (const name of fs.readdirSync(modelDir)) {
      const from = path.join(modelDir, name);
      if (WEIGHT_FILE.test(name) || name === 'model.safetensors.index.json' || name === 'config.json' ||
          name === MANIFEST_NAME || name.startsWith('.') || !fs.statSync(from).isFile()) continue;
      fs.copyFileSync(from, path.join(outDir, name));
    }
    fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify({ ...config, quantization_config: int8 }, null, 2) + '\n');
    const report = await validateModel(outDir, { requireTokenizer: false });
    if (!report.ok) throw new Error(`the int8 model is not valid:\n${formatReport(report)}`);
    return { outDir, files, quantized, sourceBytes, totalBytes, config: int8, report };
  } catch (e) {
    if (!done) progress.finish({ ok: false });
    fs.rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
}

function writeWeights(out: string, specs: TensorSpec[], opts: QuantizeOptions): { files: string[]; totalBytes: number } {
  const totalBytes = specs.reduce((a, s) => a + tensorBytes(s), 0);
  const metadata = { format: 'pt' };
  if (totalBytes <= (opts.maxSingleFileBytes ?? 4 * 2 ** 30)) {
    writeSafetensors(path.join(out, 'model.safetensors'), specs, metadata);
    return { files: ['model.safetensors'], totalBytes };
  }
  // Shards of at most shardBytes; a weight and its scales stay together.
  const shardBytes = opts.shardBytes ?? 2 * 2 ** 30;
  const shards: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let size = 0;
  for (let i = 0; i < specs.length; i++) {
    const group = specs[i + 1]?.name === scaleName(specs[i].name) ? [specs[i], specs[++i]] : [specs[i]];
    const n = group.reduce((a, s) => a + tensorBytes(s), 0);
    if (cur.length && size + n > shardBytes) { shards.push(cur); cur = []; size = 0; }
    cur.push(...group);
    size += n;
  }
  if (cur.length) shards.push(cur);
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((group, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    writeSafetensors(path.join(out, file), group, metadata);
    for (const s of group) weightMap[s.name] = file;
    files.push(file);
  });
  fs.writeFileSync(path.join(out, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
  files.push('model.safetensors.index.json');
  return { files, totalBytes };
}
