// gyre invoke: call a SageMaker endpoint (or a local `gyre endpoint` with --endpoint-url) and
// print the generated text; with --stream, each piece as it arrives.
import { invoke, type InvokeOptions } from '../../sagemaker/invoke';

export async function run(opts: Record<string, unknown>): Promise<void> {
  let last = '';
  await invoke(opts as unknown as InvokeOptions, (text) => {
    process.stdout.write(text);
    last = text;
  });
  if (!last.endsWith('\n')) process.stdout.write('\n');
}
