// gyre upload: validate (after merging --adapter, if given), upload with a manifest, print the
// s3:// URI for the stack's model data. --quantize int8 uploads 8-bit weights instead.
export async function run(opts: Record<string, unknown>): Promise<void> {
  const { uploadModel } = await import('../../model/s3_upload');
  const mib = (v: unknown) => (v === undefined ? undefined : (v as number) * 2 ** 20);
  const r = await uploadModel(String(opts.model), String(opts.to), {
    adapter: opts.adapter as string | undefined,
    quantize: opts.quantize as 'none' | 'int8' | undefined,
    quantizeLmHead: opts.quantizeLmHead === true,
    partSize: mib(opts.partSize),
    concurrency: opts.concurrency as number | undefined,
  });
  process.stderr.write(`gyre: uploaded ${r.manifest.files.length} files, ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s\n`);
  process.stdout.write(`${r.uri}\n`);
}
