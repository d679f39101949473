// gyre logits: the float32 logits of every position of a prompt, written as tensor `logits`
// [n, vocab] of a safetensors file. The ids are used exactly as given (no BOS).
import type { NativeEngineOptions } from '../../engine/native';
import { gpuMemoryOptions, gpuMemorySettings } from '../../server/config';

export function checkIds(ids: unknown, vocabSize: number): number[] {
  if (!Array.isArray(ids) || ids.length === 0) throw new Error('--ids: expected a non-empty list of token ids');
  ids.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id)) throw new Error(`--ids: position ${i}: ${id} is not an integer`);
    if (id < 0 || id >= vocabSize) {
      throw new Error(`--ids: position ${i}: token id ${id} is out of range for a vocabulary of ${vocabSize}`);
    }
  });
  return ids as number[];
}

export function engineOptions(opts: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): NativeEngineOptions {
  const o: NativeEngineOptions = { backend: (opts.backend as NativeEngineOptions['backend']) ?? 'auto' };
  Object.assign(o, gpuMemoryOptions(gpuMemorySettings({}, env)));  // GYRE_GPU_MEMORY_FRACTION / _BUDGET
  if (opts.threads !== undefined) o.numThreads = opts.threads as number;
  if (opts.quantizeLmHead && opts.quantization !== 'int8') throw new Error('--quantize-lm-head needs --quantization int8');
  if (opts.quantization !== undefined) o.quantization = opts.quantization as NativeEngineOptions['quantization'];
  if (opts.quantizeLmHead) o.quantizeLmHead = true;
  return o;
}

export async function run(opts: Record<string, unknown>): Promise<void> {
  const [{ Engine }, { loadAddon }, { writeSafetensors }, { resolveModel }] = await Promise.all([
    import('../../engine/engine'), import('../../engine/native'), import('../../model/safetensors'),
    import('../../model/model_source'),
  ]);
  const { dir: model } = await resolveModel(String(opts.model));
  const out = String(opts.out);
  const { vocabSize } = loadAddon().readConfig(model);
  const ids = checkIds(opts.ids, vocabSize);
  const engine = await Engine.load(model, engineOptions(opts));
  try {
    const logits = await engine.logits(ids);
    writeSafetensors(out, [{ name: 'logits', dtype: 'F32', shape: [ids.length, vocabSize], data: logits }]);
  } finally {
    await engine.close();
  }
  process.stderr.write(`gyre: wrote logits [${ids.length}, ${vocabSize}] to ${out}\n`);
}
