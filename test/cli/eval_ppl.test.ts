// gyre eval-ppl against a straightforward reference: perplexity computed here from `gyre logits`
// (float64 log-softmax) with Hugging Face's sliding-window loop, on the reference fixtures (needs
// the built addon). The fixtures have no tokenizer, so each copy gets a byte-level one (BPE with
// byte fallback and no merges): a text's ids are BOS then byte + 3, which the test can check.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main';
import { slidingWindows } from '../../src/engine/perplexity';
import { SafetensorsFile } from '../../src/model/safetensors';
import { captureOutput } from '../model/s3_helpers';

const REF = path.resolve(__dirname, '..', 'fixtures', 'reference');
const MODELS = ['llama-mha', 'mistral-gqa-swa'];   // MHA; GQA with a 16-token sliding window
const VOCAB = 320;

let tmp: string;
let textFile: string;
let text: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-ppl-'));
  // 293 bytes (294 tokens with BOS), ASCII and a few two-byte characters: text longer than the context.
  text = 'The river bends where the old mill stood; café owners say the water ran clear until spring. ' +
    'Downstream, the ferry crossed twice a day, and children counted the boats from the bridge. ' +
    'Naïve maps show the island twice. Nobody remembers why the lighthouse keeper left in 1921, or where he went.';
  textFile = path.join(tmp, 'text.txt');
  fs.writeFileSync(textFile, text);
  for (const m of MODELS) withTokenizer(m);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => jest.restoreAllMocks());

/** A copy of a fixture with a byte-level tokenizer: <unk> <s> </s>, then <0x00>..<0xFF> as ids 3..258. */
function withTokenizer(model: string): string {
  const dir = path.join(tmp, model);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(REF, model, f), path.join(dir, f));
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab: Record<string, number> = Object.fromEntries(specials.map((t, i) => [t, i]));
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, normalizer: null, pre_tokenizer: null, post_processor: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: true, byte_fallback: true, vocab, merges: [] },
  }));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', add_bos_token: true }));
  return dir;
}

const gyre = (...args: string[]) => main(['node', 'gyre', ...args]);

async function evalPpl(...args: string[]): Promise<Record<string, number | string>> {
  const io = captureOutput();
  const code = await gyre('eval-ppl', '--backend', 'cpu', '--json', ...args);
  jest.restoreAllMocks();
  if (code !== 0) throw new Error(`eval-ppl exited ${code}: ${io.stderr()}`);
  return JSON.parse(io.stdout());
}

let n = 0;
/** gyre logits of ids: float32 [ids.length, VOCAB]. */
async function logitsOf(model: string, ids: number[], ...flags: string[]): Promise<Float32Array> {
  const out = path.join(tmp, `l${n++}.safetensors`);
  captureOutput();
  const code = await gyre('logits', '--model', model, '--ids', ids.join(','), '--out', out, '--backend', 'cpu', ...flags);
  jest.restoreAllMocks();
  expect(code).toBe(0);
  return SafetensorsFile.open(out).readF32('logits');
}

interface Reference { meanNll: number; scored: number; windows: number; maxLogitDiff?: number }

/**
 * The reference: Hugging Face's perplexity loop, written out. For begin = 0, stride, 2 stride...:
 * end = min(begin + context, n); the window's targets are its last trg_len = end - prev_end tokens
 * (labels before them are -100), and the window's first token is never a target (labels shift by
 * one). Each target's NLL is logsumexp(logits) - logit[target] in float64, from `gyre logits` of
 * the window. `compare` (other engine flags): the largest |logit difference| over the same windows.
 */
async function reference(model: string, ids: number[], context: number, stride: number, flags: string[] = [],
                         compare?: string[]): Promise<Reference> {
  let nll = 0, scored = 0, windows = 0, maxLogitDiff = 0, prevEnd = 0;
  for (let begin = 0; begin < ids.length; begin += stride) {
    const end = Math.min(begin + context, ids.length);
    const trgLen = end - prevEnd;
    const window = ids.slice(begin, end);
    const logits = await logitsOf(model, window, ...flags);
    if (compare) {
      const other = await logitsOf(model, window, ...compare);
      for (let i = 0; i < logits.length; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(logits[i] - other[i]));
    }
    for (let t = Math.max(window.length - trgLen, 1); t < window.length; t++) {
      const row = logits.subarray((t - 1) * VOCAB, t * VOCAB);   // predicts window[t]
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let sum = 0;
      for (const x of row) sum += Math.exp(x - max);
      nll += max + Math.log(sum) - row[window[t]];
      scored++;
    }
    windows++;
    prevEnd = end;
    if (end === ids.length) break;
  }
  return { meanNll: nll / scored, scored, windows, maxLogitDiff };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

// Why 1e-6: the CPU backend's logits are bit-identical in any batch and chunking, so eval-ppl's
// engine-side logprobs come from exactly the logits `gyre logits` writes. The engine takes the
// log-softmax in double, like the reference, and rounds each logprob to float32 (relative error
// <= 2^-24 = 6e-8); every NLL is positive, so the mean is within 6e-8 relative too. 1e-6 leaves
// 16x margin, while a windowing mistake moves the result by ~1e-3 even on these near-uniform
// random models (ppl ~ 325 over 320 tokens; checked below).
const TOL = 1e-6;

describe.each(MODELS)('%s', (model) => {
  const dir = () => path.join(tmp, model);
  const ids = () => [1, ...Buffer.from(text, 'utf8')].map((b, i) => (i === 0 ? 1 : b + 3));

  test('the text is tokenized with the model\'s tokenizer, BOS at the start only', async () => {
    const r = await evalPpl('--model', dir(), '--text', textFile, '--context', '64');
    expect(r.tokens).toBe(ids().length);
    expect(r.tokens).toBe(Buffer.byteLength(text) + 1);
  });

  test.each([[64, 24], [48, 47], [100, 10]])('context %i, stride %i: equals the reference from gyre logits', async (context, stride) => {
    const want = await reference(dir(), ids(), context, stride);
    const got = await evalPpl('--model', dir(), '--text', textFile, '--context', String(context), '--stride', String(stride));
    const windows = slidingWindows(ids().length, context, stride);
    expect(got).toMatchObject({
      tokens: ids().length, tokens_scored: ids().length - 1, windows: want.windows, context, stride, quantization: 'none',
      tokens_evaluated: windows.reduce((a, w) => a + w.end - w.begin, 0),
    });
    expect(want.scored).toBe(ids().length - 1);
    expect(want.windows).toBeGreaterThan(2);   // the sliding window matters
    expect(rel(got.mean_nll as number, want.meanNll)).toBeLessThanOrEqual(TOL);
    expect(rel(got.perplexity as number, Math.exp(want.meanNll))).toBeLessThanOrEqual(TOL * want.meanNll * 1.01);
    expect(got.tokens_per_second).toBeGreaterThan(0);
  });

  test('the window matters: the same tokens scored without the overlap give a clearly different result', async () => {
    // stride = context - 1 keeps one token of context; the default (context / 2) keeps 32. Scoring
    // with less context must change the NLL far beyond TOL, or the comparison above proves nothing.
    const half = await evalPpl('--model', dir(), '--text', textFile, '--context', '64');
    const thin = await evalPpl('--model', dir(), '--text', textFile, '--context', '64', '--stride', '63');
    expect(half.stride).toBe(32);
    expect(rel(thin.mean_nll as number, half.mean_nll as number)).toBeGreaterThan(100 * TOL);
  });

  test('--quantization int8 reaches the engine: its own reference matches, and it moves the NLL by a bounded amount', async () => {
    const context = 64, stride = 24;
    const fp32 = await reference(dir(), ids(), context, stride);
    const int8 = await reference(dir(), ids(), context, stride, ['--quantization', 'int8'], []);
    const got = await evalPpl('--model', dir(), '--text', textFile, '--context', String(context), '--stride', String(stride),
      '--quantization', 'int8');
    expect(got.quantization).toBe('int8');
    expect(rel(got.mean_nll as number, int8.meanNll)).toBeLessThanOrEqual(TOL);
    // It differs from fp32 beyond the float32 rounding of the logprobs (so the flag took effect; ~2e-5
    // relative here) ...
    const delta = Math.abs((got.mean_nll as number) - fp32.meanNll);
    expect(delta / fp32.meanNll).toBeGreaterThan(TOL);
    // ... by no more than log-softmax allows: each NLL moves by at most 2 max|logit change| (the
    // target's logit and the logsumexp each move by at most max|change|), over the same windows.
    expect(int8.maxLogitDiff).toBeGreaterThan(0);
    expect(delta).toBeLessThanOrEqual(2 * int8.maxLogitDiff! + 1e-6);
    // And in absolute terms: per-row absmax int8 errs by at most half a step, 1/254 of a row's largest
    // weight, which on these N(0, 0.02) weights is well under 1% of a dot product; perplexity moves < 1%.
    expect(Math.abs(Math.exp(delta) - 1)).toBeLessThan(0.01);
  });
});

describe('refusals', () => {
  const model = () => path.join(tmp, 'llama-mha');

  test('a missing file, an empty text, a one-token text', async () => {
    const io = captureOutput();
    expect(await gyre('eval-ppl', '--model', model(), '--text', path.join(tmp, 'nope.txt'))).toBe(1);
    expect(io.stderr()).toMatch(/--text .*nope\.txt: no such file/);
    const empty = path.join(tmp, 'empty.txt');
    fs.writeFileSync(empty, '');
    expect(await gyre('eval-ppl', '--model', model(), '--text', empty)).toBe(1);
    expect(io.stderr()).toMatch(/empty\.txt: the file is empty/);
    // No BOS in the tokenizer's config: "a" is one token.
    const noBos = path.join(tmp, 'no-bos');
    fs.mkdirSync(noBos);
    for (const f of fs.readdirSync(model())) fs.copyFileSync(path.join(model(), f), path.join(noBos, f));
    fs.writeFileSync(path.join(noBos, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
    const config = JSON.parse(fs.readFileSync(path.join(noBos, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(noBos, 'config.json'), JSON.stringify({ ...config, bos_token_id: null }));
    const one = path.join(tmp, 'one.txt');
    fs.writeFileSync(one, 'a');
    expect(await gyre('eval-ppl', '--model', noBos, '--text', one, '--backend', 'cpu')).toBe(1);
    expect(io.stderr()).toMatch(/one\.txt: 1 token; perplexity needs at least 2/);
    // With BOS, one character is two tokens: enough.
    expect(await gyre('eval-ppl', '--model', model(), '--text', one, '--backend', 'cpu', '--json')).toBe(0);
    expect(JSON.parse(io.stdout().trim().split('\n').pop()!)).toMatchObject({ tokens: 2, tokens_scored: 1, windows: 1 });
  });

  test('a context longer than the model\'s, a stride out of range, a model without a tokenizer', async () => {
    const io = captureOutput();
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--context', '513')).toBe(1);
    expect(io.stderr()).toMatch(/--context 513 is longer than the model's 512 tokens/);
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--context', '64', '--stride', '64')).toBe(1);
    expect(io.stderr()).toMatch(/stride 64: expected an integer from 1 to context - 1 = 63/);
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--stride', '0')).toBe(2);
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--context', '1')).toBe(2);
    expect(await gyre('eval-ppl', '--model', path.join(REF, 'llama-mha'), '--text', textFile, '--context', '64')).toBe(1);
    expect(io.stderr()).toMatch(/has no tokenizer\.json/);
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--quantize-lm-head')).toBe(2);
  });

  test('human-readable output names the figures', async () => {
    const io = captureOutput();
    expect(await gyre('eval-ppl', '--model', model(), '--text', textFile, '--context', '128', '--backend', 'cpu')).toBe(0);
    expect(Buffer.byteLength(text)).toBe(293);
    expect(io.stdout()).toMatch(/\(f32, cpu\)\n {2}text .*: 294 tokens\n {2}windows {6}4 of 128 tokens, stride 64\n {2}scored {7}293 tokens\n {2}mean NLL {5}\d\.\d{6} nats\/token\n {2}perplexity {3}\d+\.\d{4}\n {2}speed/);
  });
});
