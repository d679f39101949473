// gyre eval-ppl: the perplexity of a text file under a model, computed by the engine with a
// sliding context (see src/engine/perplexity.ts). The text is tokenized by the model's tokenizer
// with BOS at the start only. Compare a model with its int8 self: --quantization int8.
import * as fs from 'node:fs';
import { engineOptions } from './logits';

export const DEFAULT_CONTEXT = 1024;

export async function run(opts: Record<string, unknown>): Promise<void> {
  // The text first: a missing or empty file fails before any model is loaded.
  const file = String(opts.text);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new Error(`--text ${file}: no such file`);
  const text = fs.readFileSync(file, 'utf8');
  if (text.length === 0) throw new Error(`--text ${file}: the file is empty`);
  const [{ Engine }, { loadAddon }, { resolveModel }, { perplexity, slidingWindows }] = await Promise.all([
    import('../../engine/engine'), import('../../engine/native'), import('../../model/model_source'),
    import('../../engine/perplexity'),
  ]);
  const { dir } = await resolveModel(String(opts.model));
  const { maxPositionEmbeddings } = loadAddon().readConfig(dir);
  const context = (opts.context as number | undefined) ?? Math.min(DEFAULT_CONTEXT, maxPositionEmbeddings);
  if (context > maxPositionEmbeddings) {
    throw new Error(`--context ${context} is longer than the model's ${maxPositionEmbeddings} tokens (config.json max_position_embeddings)`);
  }
  const stride = (opts.stride as number | undefined) ?? Math.floor(context / 2);
  slidingWindows(0, context, stride);   // checks context and stride before the model loads
  const engine = await Engine.load(dir, { ...engineOptions(opts), maxModelLen: Math.max(context, 2) });
  try {
    if (!engine.tokenizer) throw new Error(`${dir} has no tokenizer.json: eval-ppl tokenizes the text with the model's tokenizer`);
    const ids = engine.tokenizer.encode(text, { addBos: true });
    if (ids.length < 2) throw new Error(`--text ${file}: ${ids.length} token${ids.length === 1 ? '' : 's'}; perplexity needs at least 2`);
    // A line on stderr every 2 s: a long text takes minutes on a CPU.
    const { jsonLineLog } = await import('../../model/progress');
    const t0 = performance.now();
    let last = t0;
    const onWindow = (done: number, total: number) => {
      const now = performance.now();
      if (now - last < 2000 || done === total) return;
      last = now;
      const secs = (now - t0) / 1000;
      jsonLineLog({ event: 'eval-ppl', windows_done: done, windows: total, eta_s: Number(((secs / done) * (total - done)).toFixed(1)) });
    };
    const r = await perplexity(engine, ids, { context, stride, onWindow });
    const result = {
      model: String(opts.model), quantization: engine.quantization, dtype: engine.config.dtype, backend: engine.backend,
      text: file, tokens: r.tokens, tokens_scored: r.tokensScored, tokens_evaluated: r.tokensEvaluated,
      windows: r.windows, context: r.context, stride: r.stride, mean_nll: r.meanNll, perplexity: r.perplexity,
      seconds: Number(r.seconds.toFixed(3)), tokens_per_second: Number(r.tokensPerSecond.toFixed(1)),
    };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const n = (x: number) => x.toLocaleString('en-US');
    process.stdout.write([
      `${result.model} (${result.dtype}${result.quantization === 'int8' ? ', int8 weights' : ''}, ${result.backend})`,
      `  text         ${file}: ${n(r.tokens)} tokens`,
      `  windows      ${n(r.windows)} of ${n(r.context)} tokens, stride ${n(r.stride)}`,
      `  scored       ${n(r.tokensScored)} tokens`,
      `  mean NLL     ${r.meanNll.toFixed(6)} nats/token`,
      `  perplexity   ${r.perplexity.toFixed(4)}`,
      `  speed        ${n(Math.round(r.tokensPerSecond))} tokens/s (${n(r.tokensEvaluated)} evaluated in ${r.seconds.toFixed(2)} s)`,
    ].join('\n') + '\n');
  } finally {
    await engine.close();
  }
}
