// PEFT LoRA merge: W' = W + scale * B @ A for every adapted linear layer, in fp32, cast back to
// the base dtype; scale = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).
//   A: base_model.model.<module>.lora_A.weight  [r, in]
//   B: base_model.model.<module>.lora_B.weight  [out, r]
//   W: <module>.weight                          [out, in]
// The output keeps the base's file layout (single file or shards + index), tensor order and
// dtype; one tensor at a time is in memory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MANIFEST_NAME } from './manifest';
import { convertF32, SafetensorsFile, type TensorSpec, writeSafetensors } from './safetensors';
import { formatReport, validateModel, type ValidationReport } from './validate';

export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface LoraConfig {
  r: number;
  alpha: number;
  scale: number;
  targetModules: string[];
}

export interface MergeResult {
  outDir: string;
  lora: LoraConfig;
  merged: string[];            // base tensor names that changed
  report: ValidationReport;
}

/** Reads and checks adapter_config.json; refuses what a plain merge cannot honour. */
export function readLoraConfig(adapterDir: string): LoraConfig {
  const file = path.join(adapterDir, 'adapter_config.json');
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (is '${adapterDir}' a PEFT adapter folder?)`);
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const bad = (field: string, msg: string) => new Error(`${file}: field '${field}' ${msg}`);
  if (c.peft_type !== undefined && c.peft_type !== 'LORA') throw bad('peft_type', `'${c.peft_type}' is not supported (supported: LORA)`);
  const r = c.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw bad('r', 'must be a positive integer');
  const alpha = c.lora_alpha ?? r;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw bad('lora_alpha', 'must be a number');
  if (!Array.isArray(c.target_modules) || !c.target_modules.length) throw bad('target_modules', 'must be a list of module names');
  for (const m of c.target_modules) {
    if (!LORA_MODULES.includes(m)) throw bad('target_modules', `'${m}' is not supported (supported: ${LORA_MODULES.join(', ')})`);
  }
  if (c.fan_in_fan_out) throw bad('fan_in_fan_out', 'true is not supported');
  if (c.bias !== undefined && c.bias !== 'none') throw bad('bias', `'${c.bias}' is not supported (supported: none)`);
  if (c.use_dora) throw bad('use_dora', 'true is not supported');
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length) throw bad('modules_to_save', 'is not supported');
  for (const f of ['rank_pattern', 'alpha_pattern']) {
    if (c[f] && Object.keys(c[f] as object).length) throw bad(f, 'is not supported (one r and lora_alpha for all modules)');
  }
  const scale = c.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
  return { r, alpha, scale, targetModules: c.target_modules as string[] };
}

interface AdapterPair { a?: string; b?: string }

/** Adapter tensors grouped by the base weight they adapt. */
function adapterPairs(st: SafetensorsFile, lora: LoraConfig): Map<string, AdapterPair> {
  const pairs = new Map<string, AdapterPair>();
  for (const name of st.names()) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
    if (!m) throw new Error(`${st.path}: tensor '${name}' is not a LoRA A/B weight (base_model.model.<module>.lora_A.weight)`);
    const module = m[1].split('.').pop()!;
    if (!lora.targetModules.includes(module)) throw new Error(`${st.path}: tensor '${name}' adapts '${module}', which target_modules does not list`);
    const key = `${m[1]}.weight`;
    const p = pairs.get(key) ?? {};
    if (m[2] === 'A') p.a = name; else p.b = name;
    pairs.set(key, p);
  }
  for (const [key, p] of pairs) if (!p.a || !p.b) throw new Error(`${st.path}: '${key}' has lora_${p.a ? 'A' : 'B'} but no lora_${p.a ? 'B' : 'A'}`);
  return pairs;
}

/** W + scale * B @ A, all float32; the delta of each row is accumulated in float64. */
export function mergeWeight(w: Float32Array, a: Float32Array, b: Float32Array, out: number, inDim: number, r: number,
                            scale: number): Float32Array {
  const res = new Float32Array(w);
  const row = new Float64Array(inDim);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      const base = k * inDim;
      for (let i = 0; i < inDim; i++) row[i] += bk * a[base + i];
    }
    const off = o * inDim;
    for (let i = 0; i < inDim; i++) res[off + i] = w[off + i] + scale * row[i];
  }
  return res;
}

function baseFiles(baseDir: string): string[] {
  const index = path.join(baseDir, 'model.safetensors.index.json');
  if (!fs.existsSync(index)) return ['model.safetensors'];
  const map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
  return [...new Set(Object.values(map))].sort();
}

/** Merges an adapter into a base model folder, writing a complete model folder at outDir. */
export async function mergeLora(baseDir: string, adapterDir: string, outDir: string): Promise<MergeResult> {
  if (path.resolve(baseDir) === path.resolve(outDir)) throw new Error('--out must differ from --model');
  const base = await validateModel(baseDir, { requireTokenizer: false });
  if (!base.ok) throw new Error(`the base model is not valid:\n${formatReport(base)}`);
  const lora = readLoraConfig(adapterDir);
  const adapterFile = path.join(adapterDir, 'adapter_model.safetensors');
  if (!fs.existsSync(adapterFile)) throw new Error(`${adapterFile}: missing`);
  const adapter = SafetensorsFile.open(adapterFile);
  const pairs = adapterPairs(adapter, lora);
  if (fs.existsSync(outDir) && fs.readdirSync(outDir).length) throw new Error(`${outDir}: exists and is not empty`);
  fs.mkdirSync(outDir, { recursive: true });

  const merged: string[] = [];
  const shards = baseFiles(baseDir);
  for (const shard of shards) {
    const st = SafetensorsFile.open(path.join(baseDir, shard));
    const specs: TensorSpec[] = st.names().map((name) => {
      const info = st.info(name);
      const pair = pairs.get(name);
      if (!pair) return { name, dtype: info.dtype, shape: info.shape, data: () => [st.read(name).data] };
      const [out, inDim] = info.shape;
      const a = adapter.info(pair.a!), b = adapter.info(pair.b!);
      if (info.shape.length !== 2 || a.shape.join() !== [lora.r, inDim].join() || b.shape.join() !== [out, lora.r].join()) {
        throw new Error(`${adapterFile}: '${pair.a}' [${a.shape}] and '${pair.b}' [${b.shape}] do not fit ` +
          `'${name}' [${info.shape}] at r=${lora.r} (expected A [${lora.r}, ${inDim}], B [${out}, ${lora.r}])`);
      }
      merged.push(name);
      return {
        name, dtype: info.dtype, shape: info.shape,
        data: () => {
          const w = mergeWeight(st.readF32(name), adapter.readF32(pair.a!), adapter.readF32(pair.b!), out, inDim, lora.r, lora.scale);
          return [info.dtype === 'F32' ? w : convertF32(w, info.dtype as 'F16' | 'BF16')];
        },
      };
    });
    writeSafetensors(path.join(outDir, shard), specs, st.metadata);
  }
  const missing = [...pairs.keys()].filter((k) => !merged.includes(k));
  if (missing.length) throw new Error(`${adapterFile}: adapts '${missing[0]}', which the base model does not have`);
  for (const name of fs.readdirSync(baseDir)) {
    const from = path.join(baseDir, name);
    if (name.endsWith('.safetensors') || name === MANIFEST_NAME || name.startsWith('.') || !fs.statSync(from).isFile()) continue;
    fs.copyFileSync(from, path.join(outDir, name));
  }
  const report = await validateModel(outDir, { requireTokenizer: false });
  if (!report.ok) throw new Error(`the merged model is not valid:\n${formatReport(report)}`);
  return { outDir, lora, merged, report };
}
