// The llama.cpp peer for `gyre bench`: the same workload, levels, runner and result file as
// gyre bench (imported from ../../../dist), driving llama.cpp through node-llama-cpp (CPU).
// Each level gets one context with N sequences, so llama.cpp batches the N users itself.
// A sequence keeps its last request's tokens and reuses the common prefix (llama-server's
// per-slot prompt cache). Prompts are tokenized with the model folder's tokenizer, so both
// engines see the same token ids.
// Usage: node bench.mjs --gguf M.gguf --model DIR [--threads 2] [--concurrency 1,2,4]
//        [--requests n | --duration s] [--out FILE.json] ...   (the options of gyre bench)
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama } from 'node-llama-cpp';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..', 'dist');
const cli = require(path.join(dist, 'cli', 'commands', 'bench.js'));
const { measure } = require(path.join(dist, 'bench', 'targets.js'));
const report = require(path.join(dist, 'bench', 'report.js'));
const { Tokenizer } = require(path.join(dist, 'engine', 'tokenizer.js'));
const here = path.dirname(new URL(import.meta.url).pathname);
const nlcVersion = require(path.join(here, 'node_modules', 'node-llama-cpp', 'package.json')).version;

const { values: a } = parseArgs({
  options: {
    gguf: { type: 'string' }, model: { type: 'string' }, threads: { type: 'string', default: '0' },
    concurrency: { type: 'string', default: '1,2,4,8,16' }, requests: { type: 'string' }, duration: { type: 'string' },
    warmup: { type: 'string', default: '1' }, seed: { type: 'string', default: '0' },
    'max-prompt-tokens': { type: 'string', default: '960' }, 'max-output-tokens': { type: 'string', default: '80' },
    'system-fraction': { type: 'string', default: '0.5' }, label: { type: 'string', default: 'llama.cpp' },
    out: { type: 'string' }, quiet: { type: 'boolean', default: false },
  },
});
if (!a.gguf || !a.model) throw new Error('needs --gguf FILE and --model DIR (its tokenizer shapes the workload)');
const num = (v) => (v === undefined ? undefined : Number(v));
const opts = {
  gguf: a.gguf, model: a.model, threads: num(a.threads), concurrency: a.concurrency, requests: num(a.requests),
  duration: num(a.duration), warmup: num(a.warmup), seed: num(a.seed),
  maxPromptTokens: num(a['max-prompt-tokens']), maxOutputTokens: num(a['max-output-tokens']),
  systemFraction: num(a['system-fraction']), label: a.label,
};

class LlamaCppTarget {
  kind = 'peer';
  constructor(name, address, model, tokenizer, threads, contextSize) {
    Object.assign(this, { name, address, model, tokenizer, threads, contextSize });
    this.free = [];
  }

  async beforeLevel(n) {
    await this.context?.dispose();
    this.context = await this.model.createContext({ sequences: n, contextSize: this.contextSize, threads: this.threads });
    this.free = Array.from({ length: n }, () => this.context.getSequence());
  }

  send(req) {
    return measure(req, async (mark) => {
      const seq = this.free.pop();
      if (!seq) throw new Error('no free sequence: more workers than sequences');
      try {
        const ids = this.tokenizer.encode(req.prompt, { addBos: true });
        // Keep the prefix this sequence already holds; evaluate at least one token.
        const keep = Math.min(seq.compareContextTokens(ids).firstDifferentIndex, ids.length - 1);
        if (seq.nextTokenIndex > keep) await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
        let n = 0;
        for await (const _token of seq.evaluate(ids.slice(keep), { temperature: 0 })) {
          mark(1);
          if (++n >= req.outputTokens) break;
        }
        return n;
      } finally {
        this.free.push(seq);
      }
    });
  }

  async close() {
    await this.context?.dispose();
  }
}

const { levels, workload, settings } = cli.plan(opts);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: opts.threads ?? 0 });
const model = await llama.loadModel({ modelPath: a.gguf });
const tokenizer = Tokenizer.fromModelDir(a.model);
const contextSize = model.fileInfo.metadata.llama.context_length;
const target = new LlamaCppTarget(a.label, path.resolve(a.gguf), model, tokenizer, opts.threads ?? 0, contextSize);
const version = `${llama.llamaCppRelease.release} (node-llama-cpp ${nlcVersion})`;
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
const out = a.out ?? `llama-cpp-bench-${stamp}.json`;
const result = {
  tool: `node-llama-cpp peer runner (bench/peers/llama-cpp/bench.mjs)`, date: new Date().toISOString(),
  commit: report.gitCommit(path.join(dist, '..')), machine: report.machineInfo(), model: report.modelInfo(a.model),
  settings, workload: {}, targets: [],
};
try {
  const r = await cli.benchTarget(target, workload, levels, settings.warmup, a.quiet);
  r.version = version;
  r.settings = {
    threads: opts.threads ?? 0, context_size_per_sequence: contextSize, sequences_per_level: 'N',
    gguf: path.basename(a.gguf), cpu_math_cores: llama.cpuMathCores, kv_cache: 'llama.cpp default (F16)',
  };
  result.targets.push(r);
  result.workload = cli.workloadSummary(workload, result.targets);
} finally {
  await target.close();
  await model.dispose();
}
await cli.finish(result, out);
