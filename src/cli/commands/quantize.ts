// gyre quantize: a float model folder (or s3:// URI) written as 8-bit weights (see src/model/quantize.ts).
export async function run(opts: Record<string, unknown>): Promise<void> {
  const t0 = Date.now();
  const [{ resolveModel }, { quantizeModel }] = await Promise.all([import('../../model/model_source'), import('../../model/quantize')]);
  const { dir } = await resolveModel(String(opts.model));
  const r = await quantizeModel(dir, String(opts.out), { quantizeLmHead: opts.quantizeLmHead === true });
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  process.stderr.write(`gyre: wrote ${r.outDir} (${r.files.join(', ')}; ${r.quantized.length} int8 tensors` +
    `${r.config.lm_head ? ' with the LM head' : ''}; ${mb(r.totalBytes)} of weights from ${mb(r.sourceBytes)} of ` +
    `${r.config.source_dtype}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
