// Benchmark (not a test): the cost of structured output. The same workload (N concurrent
// requests, greedy, the same prompts and output length) runs unconstrained and under a JSON
// schema, at N = 1, 16 and 64, in one process on the in-process engine, and reports
// milliseconds per engine step and output tokens/s for each, and the overhead: the median over
// REPEATS back-to-back pairs (order alternating) of the constrained/unconstrained step-time ratio,
// and the time the engine thread itself waited for masks per step (what masks cost the engine,
// insensitive to other load on the machine).
//
// It runs the built engine (npx tsc -p tsconfig.json, and the addon), from dist/:
//   node dist/cli/main.js make-model --shape 100m --out /tmp/gyre-100m
//   npx tsc --outDir dist/bench-so --rootDir . --module commonjs --target es2022 --esModuleInterop \
//     --skipLibCheck --types node bench/structured_output.ts && \
//     node dist/bench-so/bench/structured_output.js /tmp/gyre-100m [out.json]
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Engine as EngineType, Grammar } from '../src/engine/engine';

type Engine = EngineType;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Engine } = require(path.resolve(__dirname, '..', '..', 'engine', 'engine')) as typeof import('../src/engine/engine');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { maskStats } = require(path.resolve(__dirname, '..', '..', 'engine', 'grammar')) as typeof import('../src/engine/grammar');

const LEVELS = (process.env.BENCH_LEVELS ?? '1,16,64').split(',').map(Number);
const OUTPUT_TOKENS = Number(process.env.BENCH_TOKENS ?? 48);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

// Keeps a sequence inside the grammar for the whole run (at least 50 items), through keys,
// integers, strings, enums and booleans. No maxLength: xgrammar checks bounded strings per token
// at run time (this schema with name.maxLength 12 compiles in 1.7 s, not 0.1 s, and some of its
// masks take 100 ms, not 0.05 ms).
const SCHEMA = {
  type: 'object',
  properties: {
    items: {
      type: 'array', minItems: 50,
      items: {
        type: 'object',
        properties: {
          id: { type: 'integer' }, name: { type: 'string' }, kind: { enum: ['a', 'b', 'c'] }, ok: { type: 'boolean' },
        },
        required: ['id', 'name', 'kind', 'ok'],
      },
    },
  },
  required: ['items'],
};

interface Run { mode: 'unconstrained' | 'json_schema'; concurrency: number; steps: number; tokens: number;
  seconds: number; ms_per_step: number; tokens_per_s: number; mask_wait_ms_per_step?: number;
  masks?: number; mask_ms_mean?: number; mask_ms_max?: number }

async function runLevel(engine: Engine, n: number, grammar: Grammar | undefined, level: number): Promise<Run> {
  const before = engine.stats();
  Object.assign(maskStats, { count: 0, totalMs: 0, maxMs: 0 });
  const t0 = performance.now();
  let tokens = 0;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const stream = engine.generate({
      prompt: `Request ${level}-${i}: list the items as JSON.`, grammar,
      params: { maxTokens: OUTPUT_TOKENS, temperature: 0, ignoreEos: grammar === undefined },
    });
    for await (const chunk of stream) {
      tokens += chunk.tokenIds.length;
      if (chunk.finishReason && chunk.finishReason !== 'length') throw new Error(`finished with ${chunk.finishReason}: ${chunk.error}`);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const steps = engine.stats().numSteps - before.numSteps;
  const run: Run = {
    mode: grammar ? 'json_schema' : 'unconstrained', concurrency: n, steps, tokens, seconds: +seconds.toFixed(3),
    ms_per_step: +((seconds * 1000) / steps).toFixed(2), tokens_per_s: +(tokens / seconds).toFixed(1),
  };
  if (grammar) {
    run.mask_wait_ms_per_step = +((engine.stats().maskWaitMs - before.maskWaitMs) / steps).toFixed(3);
    run.masks = maskStats.count;
    run.mask_ms_mean = +(maskStats.totalMs / Math.max(1, maskStats.count)).toFixed(3);
    run.mask_ms_max = +maskStats.maxMs.toFixed(2);
  }
  return run;
}

async function main(): Promise<void> {
  const modelDir = process.argv[2];
  if (!modelDir) throw new Error('usage: structured_output.js MODEL_DIR [OUT.json]');
  const engine = await Engine.load(modelDir, { backend: 'cpu', maxNumSeqs: 64 });
  const t0 = performance.now();
  const grammar = await engine.compileGrammar({ type: 'json_schema', schema: JSON.stringify(SCHEMA) });
  const compileMs = performance.now() - t0;
  const t1 = performance.now();
  await engine.compileGrammar({ type: 'json_schema', schema: JSON.stringify(SCHEMA) });
  const cachedMs = performance.now() - t1;
  await runLevel(engine, 2, undefined, -1);   // warm-up
  await runLevel(engine, 2, grammar, -2);
  const levels = [];
  let level = 0;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  for (const n of LEVELS) {
    const pairs: { free: Run; constrained: Run }[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const order = r % 2 ? [grammar, undefined] : [undefined, grammar];
      const a = await runLevel(engine, n, order[0], level++);
      const b = await runLevel(engine, n, order[1], level++);
      pairs.push(a.mode === 'unconstrained' ? { free: a, constrained: b } : { free: b, constrained: a });
    }
    const ratio = median(pairs.map((p) => p.constrained.ms_per_step / p.free.ms_per_step));
    const waitPerStep = median(pairs.map((p) => p.constrained.mask_wait_ms_per_step!));
    const freeStep = median(pairs.map((p) => p.free.ms_per_step));
    const entry = {
      concurrency: n, pairs,
      median_step_ratio: +ratio.toFixed(3),
      step_overhead_pct: +((ratio - 1) * 100).toFixed(1),
      median_unconstrained_ms_per_step: freeStep,
      median_mask_wait_ms_per_step: waitPerStep,
      mask_wait_pct_of_step: +((waitPerStep / freeStep) * 100).toFixed(2),
    };
    levels.push(entry);
    console.log(`N=${n}: step ratio (median of ${REPEATS}) ${entry.median_step_ratio}, overhead ${entry.step_overhead_pct}%; engine waited ${waitPerStep} ms/step for masks (${entry.mask_wait_pct_of_step}% of a ${freeStep} ms step)`);
  }
  await engine.close();
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let commit = 'unknown';
  try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
  const result = {
    bench: 'structured_output',
    date: new Date().toISOString(),
    commit,
    machine: { cpu, cores: os.cpus().length, node: process.version, shared: true,
      note: 'a 2-core machine shared with other engineers\' builds and tests: step times swing by 20-40 % between runs; the engine\'s own mask wait does not' },
    model: { dir: modelDir, shape: '100m (gyre make-model --shape 100m, f16, Llama-2 tokenizer)', backend: 'cpu' },
    workload: { output_tokens: OUTPUT_TOKENS, decoding: 'greedy', repeats: REPEATS, schema: SCHEMA,
      grammar_compile_ms: +compileMs.toFixed(1), grammar_cached_ms: +cachedMs.toFixed(3) },
    levels,
  };
  const out = process.argv[3];
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
