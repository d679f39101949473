// gyre validate: checks a model folder (or s3:// URI, or /opt/ml/model) and reports what it
// needs on an A10G. Exit status 1 when the model would be refused.
export async function run(opts: Record<string, unknown>): Promise<void> {
  const [{ resolveModel }, { formatReport, validateModel }] = await Promise.all([
    import('../../model/model_source'), import('../../model/validate'),
  ]);
  const { dir } = await resolveModel(opts.model as string | undefined);
  const report = await validateModel(dir, {
    memoryFraction: opts.memoryFraction as number | undefined, checkValues: opts.checkValues === true,
  });
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
  if (!report.ok) throw new Error(`${dir}: not a valid model (${report.errors.length} error(s))`);
}
