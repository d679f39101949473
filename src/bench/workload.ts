// The bench workload: seeded chat-like requests cut from a real-text corpus (bench/corpus/),
// or prompts from a JSONL file. The same seed, corpus and tokenizer give the same requests.
//
// Lengths (tokens, the model's tokenizer, BOS included):
//   user text     lognormal, median 200, sigma 0.8         (most 60..700; long tail cut at the cap)
//   system prompt one shared ~110-token prompt on `systemFraction` of requests (0.5 by default)
//   prompt        [INST] <<SYS>>..<</SYS>> user [/INST] (Llama-2 chat), at most maxPromptTokens (960)
//   output        lognormal, median 40, sigma 0.5, clamped to [8, maxOutputTokens (80)]
// Every request asks for exactly its output length (ignore_eos), so a random-weight model's
// output lengths follow the distribution instead of stopping at a random EOS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tokenizer } from '../engine/tokenizer';

export interface BenchRequest {
  index: number;
  system?: string;
  user: string;
  prompt: string;              // the rendered chat prompt, without BOS
  promptTokens: number;        // BOS included, counted with the workload's tokenizer
  outputTokens: number;        // exactly this many are requested
}

export interface WorkloadOptions {
  seed?: number;
  numPrompts?: number;         // generateWorkload's count
  maxPromptTokens?: number;    // cap, <= 960
  maxOutputTokens?: number;    // cap, <= 80
  systemFraction?: number;
  corpusFile?: string;
}

export const MAX_PROMPT_TOKENS = 960;
export const MAX_OUTPUT_TOKENS = 80;
export const DISTRIBUTION = {
  user: { median: 200, sigma: 0.8 },
  output: { median: 40, sigma: 0.5, min: 8 },
} as const;

export const DEFAULT_CORPUS = path.join(__dirname, '..', '..', 'bench', 'corpus', 'chat.txt');

export const SYSTEM_PROMPT =
  'You are a helpful, patient assistant for a community help desk. Answer in plain English, in short ' +
  'paragraphs, and give practical steps where they help. If a question is unclear, say what you would ' +
  'need to know. Do not invent facts, prices or dates; say when you are unsure. Keep answers friendly ' +
  'and under two hundred words unless the user asks for more detail.';

/** mulberry32: small, fast, and the same everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function lognormal(rand: () => number, median: number, sigma: number): number {
  const u = Math.max(rand(), 1e-12);
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  return median * Math.exp(sigma * z);
}

export function renderPrompt(user: string, system?: string): string {
  return system ? `[INST] <<SYS>>\n${system}\n<</SYS>>\n\n${user} [/INST]` : `[INST] ${user} [/INST]`;
}

/** Where a run takes its requests: request i is the same for a seed whatever was drawn before. */
export interface Workload {
  at(i: number): BenchRequest;
  readonly size?: number;      // a file's length: the cursor wraps there and prompts repeat
}

/** The generated chat workload, drawn on demand (each request from its own seeded stream). */
export function chatWorkload(tokenizer: Tokenizer, opts: WorkloadOptions = {}): Workload {
  const maxPrompt = Math.min(opts.maxPromptTokens ?? MAX_PROMPT_TOKENS, MAX_PROMPT_TOKENS);
  const maxOutput = Math.min(opts.maxOutputTokens ?? MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS);
  const corpus = tokenizer.encode(fs.readFileSync(opts.corpusFile ?? DEFAULT_CORPUS, 'utf8').replace(/\s+/g, ' ').trim(),
    { addBos: false });
  const fraction = opts.systemFraction ?? 0.5;
  // Under a cap too tight for the system prompt itself, requests go without it.
  const systemFits = tokenizer.encode(renderPrompt('x', SYSTEM_PROMPT), { addBos: true }).length <= maxPrompt;
  const made = new Map<number, BenchRequest>();
  const make = (index: number): BenchRequest => {
    const rand = rng(Math.imul((opts.seed ?? 0) + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
    const system = rand() < fraction && systemFits ? SYSTEM_PROMPT : undefined;
    const want = Math.max(4, Math.round(lognormal(rand, DISTRIBUTION.user.median, DISTRIBUTION.user.sigma)));
    const start = Math.floor(rand() * corpus.length);
    const outputTokens = Math.min(maxOutput, Math.max(Math.min(DISTRIBUTION.output.min, maxOutput),
      Math.round(lognormal(rand, DISTRIBUTION.output.median, DISTRIBUTION.output.sigma))));
    // A window of the corpus (wrapping around), shortened until the rendered prompt fits.
    for (let n = want; ; ) {
      const ids = Array.from({ length: n }, (_, i) => corpus[(start + i) % corpus.length]);
      const user = tokenizer.decode(ids, { skipSpecial: true }).trim();
      const prompt = renderPrompt(user, system);
      const promptTokens = tokenizer.encode(prompt, { addBos: true }).length;
      if (promptTokens <= maxPrompt || n <= 1) return { index, system, user, prompt, promptTokens, outputTokens };
      n = Math.max(1, n - Math.max(1, promptTokens - maxPrompt));
    }
  };
  return { at: (i) => made.get(i) ?? made.set(i, make(i)).get(i)! };
}

export function take(w: Workload, n: number): BenchRequest[] {
  return Array.from({ length: n }, (_, i) => w.at(i));
}

/** The first `numPrompts` (256) requests of the chat workload. */
export function generateWorkload(tokenizer: Tokenizer, opts: WorkloadOptions = {}): BenchRequest[] {
  return take(chatWorkload(tokenizer, opts), opts.numPrompts ?? 256);
}

/**
 * Reads a JSONL workload: one object a line with "prompt" (used as is) or "user" (and an optional
 * "system", rendered as chat), and optionally "output_tokens" (else drawn from the distribution).
 */
export function readWorkload(file: string, tokenizer: Tokenizer | undefined, opts: WorkloadOptions = {}): BenchRequest[] {
  const rand = rng(opts.seed ?? 0);
  const maxOutput = Math.min(opts.maxOutputTokens ?? MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS);
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  return lines.map((line, index) => {
    let o: { prompt?: string; user?: string; system?: string; output_tokens?: number };
    try { o = JSON.parse(line); } catch { throw new Error(`${file}:${index + 1}: not JSON`); }
    const prompt = o.prompt ?? (o.user !== undefined ? renderPrompt(o.user, o.system) : undefined);
    if (typeof prompt !== 'string') throw new Error(`${file}:${index + 1}: needs "prompt" or "user"`);
    const drawn = Math.round(lognormal(rand, DISTRIBUTION.output.median, DISTRIBUTION.output.sigma));
    const outputTokens = Math.min(maxOutput, Math.max(1, o.output_tokens ?? Math.max(DISTRIBUTION.output.min, drawn)));
    const promptTokens = tokenizer ? tokenizer.encode(prompt, { addBos: true }).length : 0;
    return { index, system: o.system, user: o.user ?? prompt, prompt, promptTokens, outputTokens };
  });
}

export function fileWorkload(file: string, tokenizer: Tokenizer | undefined, opts: WorkloadOptions = {}): Workload {
  const reqs = readWorkload(file, tokenizer, opts);
  if (!reqs.length) throw new Error(`${file}: no prompts`);
  return { at: (i) => reqs[i % reqs.length], size: reqs.length };
}

/** Length summary for the result JSON. */
export function describeWorkload(reqs: BenchRequest[]): Record<string, number> {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const p = reqs.map((r) => r.promptTokens);
  const o = reqs.map((r) => r.outputTokens);
  return {
    requests: reqs.length,
    prompt_tokens_mean: mean(p), prompt_tokens_max: Math.max(...p), prompt_tokens_min: Math.min(...p),
    output_tokens_mean: mean(o), output_tokens_max: Math.max(...o), output_tokens_min: Math.min(...o),
    with_system_prompt: reqs.filter((r) => r.system !== undefined).length,
  };
}
