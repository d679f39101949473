// Perplexity of a token sequence with a sliding context, as in Hugging Face's perplexity guide
// (https://huggingface.co/docs/transformers/perplexity): windows of `context` tokens start every
// `stride` tokens; each window scores only the tokens the previous window did not, so every
// token after the first is scored exactly once, and every scored token outside the first window
// sees at least context - stride tokens before it. The engine computes log p(next | prefix) for
// every position of a window (prompt logprobs, log-softmax in double); here they are summed.
import type { Engine } from './engine';

export interface PplWindow {
  begin: number;               // first token of the window
  end: number;                 // one past its last
  scoreFrom: number;           // tokens [scoreFrom, end) are scored here
}

/** The windows over n tokens; stride in [1, context - 1]. */
export function slidingWindows(n: number, context: number, stride: number): PplWindow[] {
  if (!Number.isSafeInteger(context) || context < 2) throw new Error(`context ${context}: expected an integer >= 2`);
  if (!Number.isSafeInteger(stride) || stride < 1 || stride >= context) {
    throw new Error(`stride ${stride}: expected an integer from 1 to context - 1 = ${context - 1}`);
  }
  const windows: PplWindow[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + context, n);
    windows.push({ begin, end, scoreFrom: Math.max(prevEnd, begin + 1) });
    prevEnd = end;
    if (end === n) break;
  }
  return windows;
}

export interface PerplexityOptions {
  context: number;
  stride?: number;             // default floor(context / 2)
  /** Windows in flight at once (default 2: one computes while the other's results come back). */
  concurrency?: number;
  onWindow?: (done: number, total: number) => void;
}

export interface PerplexityResult {
  tokens: number;              // in the sequence
  tokensScored: number;        // tokens - 1
  tokensEvaluated: number;     // summed window lengths (what the engine computed)
  windows: number;
  context: number;
  stride: number;
  meanNll: number;             // nats per scored token
  perplexity: number;          // exp(meanNll)
  seconds: number;
  tokensPerSecond: number;     // tokensEvaluated / seconds
}

/** The perplexity of ids (at least 2 tokens, BOS included if wanted) under the engine's model. */
export async function perplexity(engine: Engine, ids: readonly number[], opts: PerplexityOptions): Promise<PerplexityResult> {
  if (ids.length < 2) throw new Error(`the text is ${ids.length} token${ids.length === 1 ? '' : 's'} long; perplexity needs at least 2`);
  const context = opts.context;
  const stride = opts.stride ?? Math.floor(context / 2);
  const windows = slidingWindows(ids.length, context, stride);
  const nll = new Float64Array(windows.length);
  const t0 = performance.now();
  let next = 0, done = 0;
  const worker = async () => {
    while (next < windows.length) {
      const i = next++;
      const w = windows[i];
      const lp = await engine.promptLogprobs(ids.slice(w.begin, w.end) as number[]);
      // lp[j] = log p(ids[begin + j + 1] | ids[begin..begin + j])
      let sum = 0;
      for (let p = w.scoreFrom; p < w.end; p++) sum -= lp[p - w.begin - 1];
      nll[i] = sum;
      opts.onWindow?.(++done, windows.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, opts.concurrency ?? 2), windows.length) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  // Summed in window order, so the result does not depend on which window finished first.
  let total = 0;
  for (const x of nll) total += x;
  const tokensScored = ids.length - 1;
  const meanNll = total / tokensScored;
  const tokensEvaluated = windows.reduce((n, w) => n + w.end - w.begin, 0);
  return {
    tokens: ids.length, tokensScored, tokensEvaluated, windows: windows.length, context, stride, meanNll,
    perplexity: Math.exp(meanNll), seconds, tokensPerSecond: seconds > 0 ? tokensEvaluated / seconds : 0,
  };
}
