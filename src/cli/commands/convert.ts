// gyre convert --to gguf: writes a model folder as GGUF for llama.cpp (see src/model/gguf.ts).
import * as fs from 'node:fs';
import { convertToGguf } from '../../model/gguf';

export async function run(opts: Record<string, unknown>): Promise<void> {
  const t0 = Date.now();
  const out = String(opts.out);
  const header = convertToGguf({ model: String(opts.model), out, dtype: opts.dtype as 'f32' | 'f16' | undefined });
  const mib = (fs.statSync(out).size / 2 ** 20).toFixed(1);
  process.stderr.write(`gyre: wrote ${out} (GGUF v${header.version}, ${header.tensors.length} tensors, ${mib} MiB) ` +
    `in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
