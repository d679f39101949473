// Engine against engine, without HTTP or a scheduler's workload: prefill and decode speed of
// Gyre's model runner (native/tools/gyre_decode_bench) beside llama.cpp's llama-bench (pp512,
// tg128), and batched decode (gyre_batch_bench beside llama-batched-bench). bench/cpu_compare.sh
// collects the tools' own JSON into one file, each entry tagged with the model's weight type;
// `gyre bench --merge ... --engine-file FILE` puts the rows below into the result and prints them.
import * as fs from 'node:fs';

/** One line of gyre_decode_bench. pp: --prompt 512 --tokens 1; tg: --prompt 1 --tokens 128. */
export interface GyreDecodeRun { dtype: string; batch: number; prompt: number; tokens: number;
  prefill_tokens_per_s: number; decode_tokens_per_s: number }
/** gyre_batch_bench's file. */
export interface GyreBatchRun { dtype: string; prompt_tokens: number; new_tokens: number;
  levels: { concurrency: number; tokens_per_s: number; decode_tokens_per_s: number }[] }
/** One entry of `llama-bench -o json` (a pp test has n_gen 0, a tg test n_prompt 0). */
export interface LlamaBenchRun { dtype: string; n_prompt: number; n_gen: number; flash_attn: number; avg_ts: number;
  stddev_ts?: number; n_threads?: number; build_commit?: string; build_number?: number }
/** One line of `llama-batched-bench --output-format jsonl`. */
export interface LlamaBatchedRun { dtype: string; pp: number; tg: number; pl: number; speed_tg: number; speed: number }

export interface EngineRuns {
  llama_cpp_commit?: string;
  gyre_decode_bench?: GyreDecodeRun[];
  gyre_batch_bench?: GyreBatchRun[];
  llama_bench?: LlamaBenchRun[];
  llama_batched_bench?: LlamaBatchedRun[];
}

export interface EngineRow {
  dtype: string;
  test: string;                  // pp512, tg128, decode 32+64 x16 ...
  peer_variant?: string;         // llama.cpp's flash attention setting
  gyre_tokens_per_s?: number;    // the median of Gyre's runs
  peer_tokens_per_s?: number;
  gyre_over_peer?: number;
}

export interface EngineComparison { peer: string; runs: EngineRuns; rows: EngineRow[] }

const median = (xs: number[]): number | undefined => {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const FLASH: Record<number, string> = { [-1]: 'flash attention auto', 0: 'no flash attention', 1: 'flash attention' };

/** Pairs each llama-bench / llama-batched-bench figure with Gyre's run of the same test. */
export function compareEngines(runs: EngineRuns): EngineRow[] {
  const rows: EngineRow[] = [];
  const gyreDecode = runs.gyre_decode_bench ?? [];
  const push = (row: EngineRow) => {
    if (row.gyre_tokens_per_s !== undefined && row.peer_tokens_per_s) row.gyre_over_peer = row.gyre_tokens_per_s / row.peer_tokens_per_s;
    rows.push(row);
  };
  for (const l of runs.llama_bench ?? []) {
    const pp = l.n_gen === 0;
    const n = pp ? l.n_prompt : l.n_gen;
    const mine = gyreDecode.filter((g) => g.dtype === l.dtype && g.batch === 1 && (pp ? g.prompt === n : g.tokens === n && g.prompt <= 1));
    push({
      dtype: l.dtype, test: `${pp ? 'pp' : 'tg'}${n}`, peer_variant: FLASH[l.flash_attn] ?? `flash_attn ${l.flash_attn}`,
      gyre_tokens_per_s: median(mine.map((g) => (pp ? g.prefill_tokens_per_s : g.decode_tokens_per_s))), peer_tokens_per_s: l.avg_ts,
    });
  }
  for (const l of runs.llama_batched_bench ?? []) {
    const mine = (runs.gyre_batch_bench ?? []).filter((g) => g.dtype === l.dtype && g.prompt_tokens === l.pp && g.new_tokens === l.tg)
      .flatMap((g) => g.levels.filter((x) => x.concurrency === l.pl));
    push({
      dtype: l.dtype, test: `batched decode ${l.pp}+${l.tg} x${l.pl}`,
      gyre_tokens_per_s: median(mine.map((x) => x.decode_tokens_per_s)), peer_tokens_per_s: l.speed_tg,
    });
  }
  return rows;
}

/** Reads the file bench/cpu_compare.sh writes; a missing or malformed one is an error that says so. */
export function readEngineRuns(file: string): EngineComparison {
  let runs: EngineRuns;
  try {
    runs = JSON.parse(fs.readFileSync(file, 'utf8')) as EngineRuns;
  } catch (e) {
    throw new Error(`--engine-file ${file}: ${(e as Error).message}`);
  }
  const keys = ['llama_cpp_commit', 'gyre_decode_bench', 'llama_bench', 'gyre_batch_bench', 'llama_batched_bench'];
  if (typeof runs !== 'object' || runs === null || Array.isArray(runs) || !keys.some((k) => k in runs)) {
    throw new Error(`--engine-file ${file}: expected an object with ${keys.join(', ')}`);
  }
  const commit = runs.llama_cpp_commit ?? runs.llama_bench?.[0]?.build_commit;
  return { peer: `llama.cpp${commit ? ` ${commit.slice(0, 7)}` : ''}`, runs, rows: compareEngines(runs) };
}

export function formatEngineRows(e: EngineComparison): string {
  const o = (x?: number, d = 1, unit = '') => (x === undefined ? '-' : x.toFixed(d) + unit);
  const rows = [['model', 'test', 'gyre tok/s', `${e.peer} tok/s`, 'gyre / llama.cpp', 'llama.cpp setting'],
    ...e.rows.map((r) => [r.dtype, r.test, o(r.gyre_tokens_per_s), o(r.peer_tokens_per_s), o(r.gyre_over_peer, 2, 'x'), r.peer_variant ?? ''])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i < 2 || i === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}
