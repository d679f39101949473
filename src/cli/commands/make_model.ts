// gyre make-model: a random-weight model folder of a known shape (see src/model/make_model.ts).
import * as fs from 'node:fs';
import { makeModel, ShapeName, WeightDType } from '../../model/make_model';


export async function run(opts: Record<string, unknown>): Promise<void> {
  const t0 = Date.now();
  const out = String(opts.out);
  // As quantize: never mix a new model into a folder that holds something else, unless asked.
  if (!opts.force && fs.existsSync(out) && fs.statSync(out).isDirectory() && fs.readdirSync(out).length) {
    throw new Error(`${out}: exists and is not empty (give a new or empty folder, or --force to replace the model files in it)`);
  }
  const result = makeModel({
    shape: opts.shape as ShapeName,
    out,
    layers: opts.layers as number | undefined,
    dtype: (opts.dtype as WeightDType | undefined) ?? 'f32',
    seed: (opts.seed as number | undefined) ?? 0,
    scale: (opts.scale as number | undefined) ?? 1,
    progress: { intervalMs: 2000 },
  });
  const mb = (result.totalBytes / 2 ** 20).toFixed(1);
  process.stderr.write(`gyre: wrote ${out} (${result.files.join(', ')}; ${mb} MiB of weights) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
