// gyre merge: a PEFT LoRA adapter merged into its base model, written as a new model folder.
export async function run(opts: Record<string, unknown>): Promise<void> {
  const [{ mergeLora }, { formatReport }] = await Promise.all([import('../../model/lora'), import('../../model/validate')]);
  const r = await mergeLora(String(opts.model), String(opts.adapter), String(opts.out));
  process.stderr.write(`gyre: merged ${r.merged.length} tensors (r=${r.lora.r}, scale ${r.lora.scale}) into ${r.outDir}\n`);
  process.stdout.write(`${formatReport(r.report)}\n`);
}
